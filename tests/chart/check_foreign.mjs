// Validates KEDA (ScaledObject, TriggerAuthentication) and Prometheus-Operator
// (ServiceMonitor, PrometheusRule) objects against the OpenAPI schemas of those projects'
// CRDs, as compiled by the npm packages @kubernetes-models/keda and
// @kubernetes-models/prometheus-operator (generated from the upstream CRDs; installed by
// .ci/run from tests/chart/package.json).
//
// usage: node check_foreign.mjs OBJECTS.json
// OBJECTS.json holds a JSON array of objects. Prints one JSON line per object:
// {"kind", "name", "errors": [...]}; an object of any other kind is an error.
import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const models = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const obj of objects) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const Model = models[key];
  const errors = [];
  if (!Model) {
    errors.push(`no schema for ${key}`);
  } else {
    try {
      new Model(obj).validate();
    } catch (e) {
      errors.push(String(e.message ?? e));
    }
  }
  console.log(JSON.stringify({ kind: obj.kind, name: obj.metadata?.name, errors }));
}
