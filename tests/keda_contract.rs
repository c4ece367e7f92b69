//! Every point of KEDA's external-scaler contract (`../shared/docs/keda-contract.md`)
//! against a real server on a loopback port, driven by a tonic client.

use std::time::{Duration, Instant};

use slo_scaler::keda::metric_name;
use slo_scaler::proto::{GetMetricsRequest, ScaledObjectRef};
use slo_scaler_integration::*;
use tonic::Code;

const MODELS: &[(&str, &[&str])] = &[
    ("llama-3.1-8b", &["h100", "a100"]),
    ("Qwen/Qwen3-32B", &["h100"]),
    ("idle-model", &["l40s"]),
];

async fn setup() -> (ScriptedPlanner, slo_scaler::server::Running) {
    let p = ScriptedPlanner::new(MODELS);
    p.set("llama-3.1-8b", "h100", 2.34567);
    p.set("llama-3.1-8b", "a100", 1.0);
    p.set("Qwen/Qwen3-32B", "h100", 4.0);
    p.set("idle-model", "l40s", 0.0);
    let running = start_scaler(p.clone(), fast_evaluation(5.0), None).await;
    (p, running)
}

fn metrics_req(sor: ScaledObjectRef, name: &str) -> GetMetricsRequest {
    GetMetricsRequest {
        scaled_object_ref: Some(sor),
        metric_name: name.to_string(),
    }
}

#[tokio::test]
async fn get_metric_spec_names_one_lowercase_metric_with_target_one() {
    let (_p, running) = setup().await;
    let mut c = client(&running).await;
    let spec = c
        .get_metric_spec(sor(Some("Qwen/Qwen3-32B"), Some("h100"), &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(spec.metric_specs.len(), 1);
    let s = &spec.metric_specs[0];
    assert!(
        s.metric_name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{}",
        s.metric_name
    );
    assert_eq!(s.metric_name, metric_name("Qwen/Qwen3-32B", Some("h100")));
    assert_eq!(s.target_size_float, 1.0);
    assert_eq!(s.target_size, 1);
    // Deterministic across calls, distinct across variants and the whole model.
    let again = c
        .get_metric_spec(sor(Some("Qwen/Qwen3-32B"), Some("h100"), &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.metric_specs[0].metric_name, s.metric_name);
    let whole = c
        .get_metric_spec(sor(Some("Qwen/Qwen3-32B"), None, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(whole.metric_specs[0].metric_name, s.metric_name);
}

#[tokio::test]
async fn get_metric_spec_answers_from_memory_while_the_backend_hangs() {
    let (p, running) = setup().await;
    p.set_hanging(true);
    p.set_unavailable("llama-3.1-8b", "prometheus down");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = client(&running).await;
    let started = Instant::now();
    let spec = c
        .get_metric_spec(sor(Some("llama-3.1-8b"), Some("h100"), &[]))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(spec.into_inner().metric_specs.len(), 1);
}

#[tokio::test]
async fn get_metrics_returns_one_milli_precision_value_with_int_mirror() {
    let (_p, running) = setup().await;
    let mut c = client(&running).await;
    let name = metric_name("llama-3.1-8b", Some("h100"));
    let r = c
        .get_metrics(metrics_req(
            sor(Some("llama-3.1-8b"), Some("h100"), &[]),
            &name,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.metric_values.len(),
        1,
        "KEDA sums every value: exactly one"
    );
    assert_eq!(r.metric_values[0].metric_value_float, 2.346);
    assert_eq!(r.metric_values[0].metric_value, 2);
    // Metric names match case-insensitively (old KEDA lowercased; be liberal either way).
    let r = c
        .get_metrics(metrics_req(
            sor(Some("llama-3.1-8b"), Some("h100"), &[]),
            &name.to_uppercase(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.metric_values[0].metric_value_float, 2.346);
    // Without a variant: the whole model, the sum of its variants.
    let whole = metric_name("llama-3.1-8b", None);
    let r = c
        .get_metrics(metrics_req(sor(Some("llama-3.1-8b"), None, &[]), &whole))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.metric_values[0].metric_value_float, 3.346);
    assert_eq!(r.metric_values[0].metric_value, 3);
}

#[tokio::test]
async fn bad_requests_get_precise_codes_and_messages() {
    let (_p, running) = setup().await;
    let mut c = client(&running).await;
    let name = metric_name("llama-3.1-8b", Some("h100"));

    let e = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: None,
            metric_name: name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("scaledObjectRef"), "{}", e.message());

    let e = c
        .get_metrics(metrics_req(sor(None, None, &[]), &name))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("`model`"), "{}", e.message());

    for call in ["spec", "active", "stream"] {
        let bad = sor(
            Some("llama-3.1-8b"),
            None,
            &[("activationThreshold", "lots")],
        );
        let e = match call {
            "spec" => c.get_metric_spec(bad).await.map(|_| ()).unwrap_err(),
            "active" => c.is_active(bad).await.map(|_| ()).unwrap_err(),
            _ => c.stream_is_active(bad).await.map(|_| ()).unwrap_err(),
        };
        assert_eq!(e.code(), Code::InvalidArgument, "{call}");
        assert!(
            e.message().contains("activationThreshold"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("lots"), "{}", e.message());
    }

    let e = c
        .get_metrics(metrics_req(sor(Some("no-such-model"), None, &[]), &name))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(
        e.message().contains("llama-3.1-8b"),
        "lists known models: {}",
        e.message()
    );

    let e = c
        .get_metric_spec(sor(Some("llama-3.1-8b"), Some("tpu"), &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("h100"), "{}", e.message());

    let e = c
        .get_metrics(metrics_req(
            sor(Some("llama-3.1-8b"), Some("h100"), &[]),
            "s0-other",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains(&name), "{}", e.message());

    let e = c.is_active(sor(Some("nope"), None, &[])).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn unavailable_and_stale_data_is_an_error_never_a_zero() {
    let p = ScriptedPlanner::new(MODELS);
    p.set("llama-3.1-8b", "h100", 5.0);
    p.set("llama-3.1-8b", "a100", 5.0);
    p.set_unavailable("idle-model", "query returned no series");
    let running = start_scaler(p.clone(), fast_evaluation(0.5), None).await;
    let mut c = client(&running).await;

    // Never evaluated successfully.
    let e = c
        .get_metrics(metrics_req(
            sor(Some("idle-model"), Some("l40s"), &[]),
            &metric_name("idle-model", Some("l40s")),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("no series"), "{}", e.message());
    let e = c
        .is_active(sor(Some("idle-model"), None, &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    // A model nobody has evaluated yet (the planner returns nothing for it).
    let e = c
        .is_active(sor(Some("Qwen/Qwen3-32B"), None, &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);

    // A hanging backend: the last good value is served until it is stale, then UNAVAILABLE.
    let req = || {
        metrics_req(
            sor(Some("llama-3.1-8b"), Some("h100"), &[]),
            &metric_name("llama-3.1-8b", Some("h100")),
        )
    };
    assert_eq!(
        c.get_metrics(req())
            .await
            .unwrap()
            .into_inner()
            .metric_values[0]
            .metric_value_float,
        5.0
    );
    p.set_hanging(true);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let started = Instant::now();
    let e = c.get_metrics(req()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "answered from memory"
    );
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("did not finish"), "{}", e.message());
    // Recovery.
    p.set_hanging(false);
    let mut ok = false;
    for _ in 0..50 {
        if c.get_metrics(req()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "answers resume once evaluations succeed again");
}

#[tokio::test]
async fn is_active_is_strictly_above_the_activation_threshold() {
    let (p, running) = setup().await;
    let mut c = client(&running).await;
    let active = |r: tonic::Response<slo_scaler::proto::IsActiveResponse>| r.into_inner().result;
    assert!(!active(
        c.is_active(sor(Some("idle-model"), None, &[]))
            .await
            .unwrap()
    ));
    assert!(active(
        c.is_active(sor(Some("Qwen/Qwen3-32B"), None, &[]))
            .await
            .unwrap()
    ));
    p.set("idle-model", "l40s", 0.5);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let at = |t: &'static str| {
        sor(
            Some("idle-model"),
            Some("l40s"),
            &[("activationThreshold", t)],
        )
    };
    assert!(active(c.is_active(at("0")).await.unwrap()));
    assert!(
        !active(c.is_active(at("0.5")).await.unwrap()),
        "equal is not above"
    );
    assert!(active(c.is_active(at("0.499")).await.unwrap()));
    // Consistent with GetMetrics: the quantised value decides.
    p.set("idle-model", "l40s", 0.0004);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v = c
        .get_metrics(metrics_req(
            at("0"),
            &metric_name("idle-model", Some("l40s")),
        ))
        .await
        .unwrap()
        .into_inner()
        .metric_values[0]
        .metric_value_float;
    assert_eq!(v, 0.0);
    assert!(!active(c.is_active(at("0")).await.unwrap()));
}

#[tokio::test]
async fn stream_is_active_sends_state_then_rising_edges_within_a_second() {
    let (p, running) = setup().await;
    let mut c = client(&running).await;
    let mut stream = c
        .stream_is_active(sor(Some("idle-model"), Some("l40s"), &[]))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_millis(500), stream.message())
        .await
        .expect("current state at once")
        .unwrap()
        .unwrap();
    assert!(!first.result);
    for round in 0..2 {
        let flipped = Instant::now();
        p.set("idle-model", "l40s", 3.0);
        let msg = tokio::time::timeout(Duration::from_secs(1), stream.message())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no transition within 1 s"))
            .unwrap()
            .unwrap();
        assert!(msg.result);
        assert!(flipped.elapsed() < Duration::from_secs(1));
        // Going inactive sends nothing (KEDA ignores false)...
        p.set("idle-model", "l40s", 0.0);
        let quiet = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
        assert!(quiet.is_err(), "no message on active->inactive: {quiet:?}");
    }
    // ... and staying active sends nothing either.
    p.set("idle-model", "l40s", 2.0);
    assert!(stream.message().await.unwrap().unwrap().result);
    p.set("idle-model", "l40s", 3.0);
    let quiet = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
    assert!(quiet.is_err(), "no message while staying active");
}

#[tokio::test]
async fn stream_metric_spec_is_unimplemented() {
    let (_p, running) = setup().await;
    let mut c = client(&running).await;
    let e = c
        .stream_metric_spec(sor(Some("llama-3.1-8b"), None, &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
}

#[tokio::test]
async fn keda_sequence_fits_its_deadline_and_many_streams_share_one_connection() {
    let (_p, running) = setup().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut streams = Vec::new();
    for i in 0..300 {
        let mut c =
            slo_scaler::proto::external_scaler_client::ExternalScalerClient::new(channel.clone());
        let model = if i % 2 == 0 {
            "idle-model"
        } else {
            "Qwen/Qwen3-32B"
        };
        let mut s = c
            .stream_is_active(sor(Some(model), None, &[]))
            .await
            .unwrap()
            .into_inner();
        let first = s.message().await.unwrap().unwrap();
        assert_eq!(first.result, model != "idle-model");
        streams.push(s);
    }
    let mut c =
        slo_scaler::proto::external_scaler_client::ExternalScalerClient::new(channel.clone());
    for _ in 0..50 {
        let started = Instant::now();
        let mut req = tonic::Request::new(sor(Some("llama-3.1-8b"), Some("a100"), &[]));
        req.set_timeout(Duration::from_secs(3));
        let spec = c.get_metric_spec(req).await.unwrap().into_inner();
        let mut req = tonic::Request::new(metrics_req(
            sor(Some("llama-3.1-8b"), Some("a100"), &[]),
            &spec.metric_specs[0].metric_name,
        ));
        req.set_timeout(Duration::from_secs(3));
        let v = c.get_metrics(req).await.unwrap().into_inner();
        assert_eq!(v.metric_values[0].metric_value_float, 1.0);
        let mut req = tonic::Request::new(sor(Some("llama-3.1-8b"), Some("a100"), &[]));
        req.set_timeout(Duration::from_secs(3));
        assert!(c.is_active(req).await.unwrap().into_inner().result);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    drop(streams);
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let (_p, running) = setup().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = HealthClient::new(channel.clone());
    for service in ["", "externalscaler.ExternalScaler"] {
        let r = h
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, 1, "{service:?} SERVING");
    }

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut r = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = r
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection answer {msg:?}")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"externalscaler.ExternalScaler"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test]
async fn cancelled_streams_are_released_and_shutdown_ends_streams_with_ok() {
    let (_p, running) = setup().await;
    let http = format!("http://{}", running.http_addr);
    let open_streams = |text: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with("slo_scaler_open_streams "))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut c = client(&running).await;
    let s = c
        .stream_is_active(sor(Some("Qwen/Qwen3-32B"), None, &[]))
        .await
        .unwrap()
        .into_inner();
    let text = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(open_streams(&text), 1.0);
    drop(s); // client cancels
    let mut released = false;
    for _ in 0..50 {
        let text = reqwest::get(format!("{http}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if open_streams(&text) == 0.0 {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(released, "server noticed the cancellation");

    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut s = c
            .stream_is_active(sor(Some("Qwen/Qwen3-32B"), None, &[]))
            .await
            .unwrap()
            .into_inner();
        s.message().await.unwrap().unwrap();
        streams.push(s);
    }
    running.shutdown();
    for mut s in streams {
        let end = tokio::time::timeout(Duration::from_secs(2), s.message())
            .await
            .expect("stream ends promptly");
        assert!(matches!(end, Ok(None)), "ended with OK, got {end:?}");
    }
    tokio::time::timeout(Duration::from_secs(5), running.wait())
        .await
        .expect("shutdown completes")
        .expect("clean shutdown");
}
