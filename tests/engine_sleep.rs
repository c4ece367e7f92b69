//! The vLLM sleep-mode client against a loopback engine implementing the endpoints'
//! semantics (`tests/support/fake_vllm.rs`): verified sleep and wake, already asleep,
//! slow wake (within and beyond the timeout), failure mid-wake, a wake that answers 200
//! but leaves the engine asleep, and 404 when sleep mode is off.

use std::time::Duration;

use axum::http::Method;
use slo_scaler::warm::engine::{
    EngineControl, EngineError, EngineTimeouts, HttpEngine, Transition, sleep_verified,
    wake_verified,
};
use slo_scaler_integration::fake_vllm::FakeVllm;
use slo_scaler_integration::init_crypto;

fn client(wake_ms: u64) -> HttpEngine {
    init_crypto();
    HttpEngine::new(EngineTimeouts {
        call: Duration::from_secs(2),
        wake: Duration::from_millis(wake_ms),
    })
    .expect("client")
}

#[tokio::test]
async fn sleep_then_wake_are_verified_by_reading_the_state_back() {
    let e = FakeVllm::start("127.0.0.1:0").await;
    let c = client(2_000);
    assert_eq!(
        sleep_verified(&c, &e.base).await.expect("sleep"),
        Transition::Done
    );
    assert!(e.get().asleep);
    assert_eq!(e.get().levels, ["1"], "level 1: weights kept in CPU RAM");
    assert!(c.is_sleeping(&e.base).await.expect("read"));
    assert_eq!(
        wake_verified(&c, &e.base).await.expect("wake"),
        Transition::Done
    );
    assert!(!e.get().asleep);
    // is_sleeping before and after each call.
    assert_eq!(e.count(&Method::GET, "/is_sleeping"), 5);
}

#[tokio::test]
async fn already_asleep_sends_no_second_sleep_and_already_awake_no_wake() {
    let e = FakeVllm::start("127.0.0.1:0").await;
    e.set(|s| s.asleep = true);
    let c = client(2_000);
    assert_eq!(
        sleep_verified(&c, &e.base).await.expect("sleep"),
        Transition::Already
    );
    assert_eq!(e.count(&Method::POST, "/sleep"), 0);
    e.set(|s| s.asleep = false);
    assert_eq!(
        wake_verified(&c, &e.base).await.expect("wake"),
        Transition::Already
    );
    assert_eq!(e.count(&Method::POST, "/wake_up"), 0);
}

#[tokio::test]
async fn a_slow_wake_within_the_timeout_succeeds_and_beyond_it_is_a_timeout() {
    let e = FakeVllm::start("127.0.0.1:0").await;
    e.set(|s| {
        s.asleep = true;
        s.wake_delay = Duration::from_millis(300);
    });
    assert_eq!(
        wake_verified(&client(2_000), &e.base).await.expect("wake"),
        Transition::Done
    );
    e.set(|s| {
        s.asleep = true;
        s.wake_delay = Duration::from_millis(1_500);
    });
    let err = wake_verified(&client(200), &e.base)
        .await
        .expect_err("too slow");
    assert!(
        matches!(err, EngineError::Timeout { op: "wake_up", after, .. } if after == Duration::from_millis(200)),
        "{err}"
    );
    assert_eq!(err.kind(), "timeout");
    assert!(err.to_string().contains("no answer within 200ms"), "{err}");
}

#[tokio::test]
async fn a_failure_mid_wake_is_an_error_and_the_engine_stays_asleep() {
    let e = FakeVllm::start("127.0.0.1:0").await;
    e.set(|s| {
        s.asleep = true;
        s.fail_wake = true;
        s.wake_delay = Duration::from_millis(100);
    });
    let err = wake_verified(&client(2_000), &e.base)
        .await
        .expect_err("fails");
    match &err {
        EngineError::Status {
            op, status, body, ..
        } => {
            assert_eq!((*op, *status), ("wake_up", 500));
            assert!(body.contains("CUDA error"), "{body}");
        }
        other => panic!("expected a status error, got {other}"),
    }
    assert!(e.get().asleep);
}

#[tokio::test]
async fn a_wake_that_answers_200_but_stays_asleep_is_not_verified() {
    let e = FakeVllm::start("127.0.0.1:0").await;
    e.set(|s| {
        s.asleep = true;
        s.wake_lies = true;
    });
    let err = wake_verified(&client(2_000), &e.base)
        .await
        .expect_err("not verified");
    assert!(
        matches!(
            err,
            EngineError::NotVerified {
                op: "wake_up",
                got: true,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_sleep_is_an_error_and_the_engine_stays_awake() {
    let e = FakeVllm::start("127.0.0.1:0").await;
    e.set(|s| s.fail_sleep = true);
    let err = sleep_verified(&client(2_000), &e.base)
        .await
        .expect_err("fails");
    assert!(
        matches!(
            err,
            EngineError::Status {
                op: "sleep",
                status: 500,
                ..
            }
        ),
        "{err}"
    );
    assert!(!e.get().asleep);
}

#[tokio::test]
async fn sleep_mode_off_is_a_404_with_the_fix_in_the_message() {
    let e = FakeVllm::start("127.0.0.1:0").await;
    e.set(|s| s.sleep_mode = false);
    let c = client(2_000);
    let err = c.is_sleeping(&e.base).await.expect_err("404");
    assert!(matches!(err, EngineError::SleepModeOff { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode"),
        "{err}"
    );
    let err = sleep_verified(&c, &e.base).await.expect_err("404");
    assert_eq!(err.kind(), "sleep_mode_off");
    assert_eq!(
        e.count(&Method::POST, "/sleep"),
        0,
        "nothing sent after the 404"
    );
}

#[tokio::test]
async fn an_engine_that_is_down_is_a_connection_error_and_garbage_is_a_decode_error() {
    let c = client(2_000);
    // A port nobody listens on: bind, take the port, drop.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let err = c
        .is_sleeping(&format!("http://127.0.0.1:{port}"))
        .await
        .expect_err("down");
    assert_eq!(err.kind(), "connection", "{err}");
    // A base URL whose `/is_sleeping` lands on `/metrics` (the fragment is not sent):
    // text, not `{"is_sleeping": bool}`.
    let e = FakeVllm::start("127.0.0.1:0").await;
    let err = c
        .is_sleeping(&format!("{}/metrics#", e.base))
        .await
        .expect_err("decode");
    assert!(matches!(err, EngineError::Decode { .. }), "{err}");
}
