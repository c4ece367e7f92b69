//! KEDA-sequence benchmark: slo-scaler against the floor of this stack.
//!
//! Both servers run in this process on loopback, measured alternately in one run (the
//! machine is noisy, so only ratios mean much). The floor is a minimal tonic server that
//! answers constants; slo-scaler answers from its decision snapshot with metadata
//! validation, metric-name checks and telemetry. Load: `STREAMS` open `StreamIsActive`
//! streams, then `SCALED_OBJECTS` concurrent clients each looping KEDA's sequence
//! (GetMetricSpec → GetMetrics → IsActive, one 3 s deadline) over one shared channel.
//!
//! Run: `cargo bench -p slo-scaler-integration --bench keda_sequence`
//! (env: BENCH_SECONDS, BENCH_ROUNDS, BENCH_STREAMS, BENCH_SCALED_OBJECTS).

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::Stream;
use slo_scaler::config::Config;
use slo_scaler::demo::CapacityRulePlanner;
use slo_scaler::proto::external_scaler_client::ExternalScalerClient;
use slo_scaler::proto::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use slo_scaler::proto::*;
use slo_scaler_integration::*;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The floor: constant answers, nothing else.
struct Floor;

#[tonic::async_trait]
impl ExternalScaler for Floor {
    async fn is_active(
        &self,
        _: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        Ok(Response::new(IsActiveResponse { result: true }))
    }
    type StreamIsActiveStream =
        Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send>>;
    async fn stream_is_active(
        &self,
        _: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let s = futures::stream::once(async { Ok(IsActiveResponse { result: true }) })
            .chain(futures::stream::pending());
        Ok(Response::new(Box::pin(s)))
    }
    async fn get_metric_spec(
        &self,
        _: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: "floor".into(),
                target_size: 1,
                target_size_float: 1.0,
            }],
        }))
    }
    async fn get_metrics(
        &self,
        _: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: "floor".into(),
                metric_value: 3,
                metric_value_float: 3.0,
            }],
        }))
    }
    type StreamMetricSpecStream =
        Pin<Box<dyn Stream<Item = Result<GetMetricSpecResponse, Status>> + Send>>;
    async fn stream_metric_spec(
        &self,
        _: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        Err(Status::unimplemented(""))
    }
}

use futures::StreamExt;

struct Outcome {
    sequences: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `poll = None`: each ScaledObject loops as fast as it can (throughput at saturation).
/// `poll = Some(p)`: each polls once per `p`, phases spread (latency at a set rate).
async fn drive(
    addr: String,
    triggers: &[(String, Option<String>)],
    seconds: u64,
    streams: u64,
    sos: u64,
    poll: Option<Duration>,
) -> Outcome {
    let channel: Channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut open = Vec::new();
    for i in 0..streams as usize {
        let (m, v) = &triggers[i % triggers.len()];
        let mut c = ExternalScalerClient::new(channel.clone());
        let mut s = c
            .stream_is_active(sor(Some(m), v.as_deref(), &[]))
            .await
            .unwrap()
            .into_inner();
        s.message().await.unwrap().unwrap();
        open.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..sos as usize {
        let (m, v) = triggers[i % triggers.len()].clone();
        let mut c = ExternalScalerClient::new(channel.clone());
        let mut ticker = poll.map(|p| {
            let phase = p.mul_f64(i as f64 / sos as f64);
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + phase, p);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            t
        });
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                let t = Instant::now();
                let r = sor(Some(&m), v.as_deref(), &[]);
                let mut req = Request::new(r.clone());
                req.set_timeout(Duration::from_secs(3));
                let spec = c.get_metric_spec(req).await.unwrap().into_inner();
                let mut req = Request::new(GetMetricsRequest {
                    scaled_object_ref: Some(r.clone()),
                    metric_name: spec.metric_specs[0].metric_name.clone(),
                });
                req.set_timeout(Duration::from_secs(3) - t.elapsed());
                let v = c.get_metrics(req).await.unwrap().into_inner();
                assert_eq!(v.metric_values.len(), 1);
                let mut req = Request::new(r);
                req.set_timeout(Duration::from_secs(3) - t.elapsed());
                c.is_active(req).await.unwrap();
                lat.push(t.elapsed().as_secs_f64());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(open);
    all.sort_by(f64::total_cmp);
    let q = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] * 1e3;
    Outcome {
        sequences: all.len(),
        seconds,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` probes bench binaries; nothing to do.
    }
    let seconds = env_or("BENCH_SECONDS", 5);
    let rounds = env_or("BENCH_ROUNDS", 3);
    let streams = env_or("BENCH_STREAMS", 1000);
    let sos = env_or("BENCH_SCALED_OBJECTS", 200);

    let config = Config::from_file(&constant_fleet_config()).unwrap();
    let triggers: Vec<(String, Option<String>)> = config
        .models
        .iter()
        .flat_map(|m| {
            std::iter::once((m.name.clone(), None)).chain(
                m.variants
                    .iter()
                    .map(|v| (m.name.clone(), Some(v.name.clone()))),
            )
        })
        .collect();
    let mut ev = config.evaluation;
    ev.interval_s = 1.0;
    let ours = start_scaler(CapacityRulePlanner::new(&config), ev, None).await;

    let floor_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let floor_addr = floor_listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .max_concurrent_streams(Some(1_000_000))
            .add_service(ExternalScalerServer::new(Floor))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                floor_listener,
            )),
    );

    let poll = Duration::from_millis(env_or("BENCH_POLL_MS", 1000));
    println!(
        "KEDA sequence benchmark: {sos} ScaledObjects, {streams} open streams, {seconds} s x {rounds} rounds per server and phase, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:<12} {:<22} {:>5} {:>10} {:>9} {:>9}",
        "server", "phase", "round", "seq/s", "p50 ms", "p99 ms"
    );
    let servers = [
        ("floor", floor_addr.to_string()),
        ("slo-scaler", ours.grpc_addr.to_string()),
    ];
    let phases = [("saturation", None), ("polling", Some(poll))];
    // results[phase][server] = (sequences, seconds, p50s, p99s)
    let mut results = vec![vec![(0usize, 0.0f64, Vec::new(), Vec::new()); 2]; 2];
    for round in 0..rounds {
        for (pi, (phase, poll)) in phases.iter().enumerate() {
            for (si, (name, addr)) in servers.iter().enumerate() {
                let o = drive(addr.clone(), &triggers, seconds, streams, sos, *poll).await;
                let label = match poll {
                    None => phase.to_string(),
                    Some(p) => format!("{phase} every {} ms", p.as_millis()),
                };
                println!(
                    "{:<12} {:<22} {:>5} {:>10.0} {:>9.3} {:>9.3}",
                    name,
                    label,
                    round,
                    o.sequences as f64 / o.seconds,
                    o.p50_ms,
                    o.p99_ms
                );
                let r = &mut results[pi][si];
                r.0 += o.sequences;
                r.1 += o.seconds;
                r.2.push(o.p50_ms);
                r.3.push(o.p99_ms);
            }
        }
    }
    let median = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (pi, (phase, _)) in phases.iter().enumerate() {
        let [f, o] = [&results[pi][0], &results[pi][1]];
        println!(
            "summary {phase}: floor {:.0} seq/s (median p50 {:.3} ms, p99 {:.3} ms); slo-scaler {:.0} seq/s (median p50 {:.3} ms, p99 {:.3} ms); throughput ratio {:.3}",
            f.0 as f64 / f.1,
            median(&f.2),
            median(&f.3),
            o.0 as f64 / o.1,
            median(&o.2),
            median(&o.3),
            (o.0 as f64 / o.1) / (f.0 as f64 / f.1)
        );
    }
}
