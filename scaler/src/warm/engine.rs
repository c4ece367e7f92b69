//! The engine's sleep-mode HTTP API (vLLM), behind the narrow [`EngineControl`] trait.
//!
//! vLLM serves three endpoints, only when started with `VLLM_SERVER_DEV_MODE=1` (without
//! it the router is not mounted: every one answers 404) and `--enable-sleep-mode`:
//! `POST /sleep?level=1` (weights to CPU RAM, KV cache dropped; empty 200),
//! `POST /wake_up` (empty 200 once the weights are back), `GET /is_sleeping` →
//! `{"is_sleeping": bool}`. A 200 from `/sleep` or `/wake_up` is not trusted on its own:
//! [`sleep_verified`] and [`wake_verified`] read `/is_sleeping` back and fail with
//! [`EngineError::NotVerified`] when the engine is not in the state asked for.
//!
//! Every call is bounded: `call_timeout` for `/sleep` and `/is_sleeping`, `wake_timeout` for
//! `/wake_up` (it copies the weights back to the GPU: seconds, not milliseconds).

use std::time::Duration;

use futures::future::BoxFuture;

/// Why a sleep-mode call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The endpoint answered 404: the engine was started without sleep mode.
    #[error(
        "{url} answered 404: sleep mode is off on this engine (start vLLM with VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode)"
    )]
    SleepModeOff {
        /// The URL called.
        url: String,
    },
    /// No answer within the call's timeout.
    #[error("{op} {url}: no answer within {after:?}")]
    Timeout {
        /// `sleep`, `wake_up` or `is_sleeping`.
        op: &'static str,
        /// The URL called.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The connection failed (refused, reset, DNS).
    #[error("{op} {url}: {source}")]
    Http {
        /// Which call.
        op: &'static str,
        /// The URL called.
        url: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A status other than 200 and 404.
    #[error("{op} {url}: HTTP {status} (expected 200): {body}")]
    Status {
        /// Which call.
        op: &'static str,
        /// The URL called.
        url: String,
        /// The status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// `/is_sleeping` answered something other than `{"is_sleeping": bool}`.
    #[error("is_sleeping {url}: expected {{\"is_sleeping\": true|false}}, got {got:?}")]
    Decode {
        /// The URL called.
        url: String,
        /// What came (truncated).
        got: String,
    },
    /// The call succeeded but `/is_sleeping` reads back the other state.
    #[error("{op} {base}: answered 200 but is_sleeping reads {got} afterwards")]
    NotVerified {
        /// `sleep` or `wake_up`.
        op: &'static str,
        /// The engine's base URL.
        base: String,
        /// What `/is_sleeping` said.
        got: bool,
    },
}

impl EngineError {
    /// A short fixed word for metrics and reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::SleepModeOff { .. } => "sleep_mode_off",
            EngineError::Timeout { .. } => "timeout",
            EngineError::Http { .. } => "connection",
            EngineError::Status { .. } => "http_status",
            EngineError::Decode { .. } => "decode",
            EngineError::NotVerified { .. } => "not_verified",
        }
    }
}

/// The three sleep-mode calls on one engine, addressed by its base URL
/// (`http://10.1.2.3:8000`).
pub trait EngineControl: Send + Sync {
    /// `POST /sleep?level=1`.
    fn sleep<'a>(&'a self, base: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;
    /// `POST /wake_up`.
    fn wake_up<'a>(&'a self, base: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;
    /// `GET /is_sleeping`.
    fn is_sleeping<'a>(&'a self, base: &'a str) -> BoxFuture<'a, Result<bool, EngineError>>;
}

/// Timeouts of the HTTP client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineTimeouts {
    /// `/sleep` and `/is_sleeping`.
    pub call: Duration,
    /// `/wake_up`.
    pub wake: Duration,
}

impl Default for EngineTimeouts {
    fn default() -> Self {
        Self {
            call: Duration::from_secs(10),
            wake: Duration::from_secs(60),
        }
    }
}

/// [`EngineControl`] over HTTP.
#[derive(Clone)]
pub struct HttpEngine {
    client: reqwest::Client,
    timeouts: EngineTimeouts,
}

impl HttpEngine {
    /// A client with these timeouts.
    pub fn new(timeouts: EngineTimeouts) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.call)
            .tls_backend_rustls()
            .build()
            .map_err(|e| format!("cannot build the engine HTTP client: {e}"))?;
        Ok(Self { client, timeouts })
    }

    async fn call(
        &self,
        op: &'static str,
        req: reqwest::RequestBuilder,
        url: String,
        timeout: Duration,
    ) -> Result<String, EngineError> {
        let fut = async {
            let resp = req.send().await?;
            let status = resp.status();
            let body = resp.text().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let (status, body) = match tokio::time::timeout(timeout, fut).await {
            Err(_) => {
                return Err(EngineError::Timeout {
                    op,
                    url,
                    after: timeout,
                });
            }
            Ok(Err(source)) if source.is_timeout() => {
                return Err(EngineError::Timeout {
                    op,
                    url,
                    after: timeout,
                });
            }
            Ok(Err(source)) => return Err(EngineError::Http { op, url, source }),
            Ok(Ok(r)) => r,
        };
        match status.as_u16() {
            200..=299 => Ok(body),
            404 => Err(EngineError::SleepModeOff { url }),
            s => Err(EngineError::Status {
                op,
                url,
                status: s,
                body: body.chars().take(300).collect(),
            }),
        }
    }
}

fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

impl EngineControl for HttpEngine {
    fn sleep<'a>(&'a self, base: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let url = join(base, "/sleep?level=1");
            let req = self.client.post(&url);
            self.call("sleep", req, url, self.timeouts.call)
                .await
                .map(drop)
        })
    }

    fn wake_up<'a>(&'a self, base: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let url = join(base, "/wake_up");
            let req = self.client.post(&url);
            self.call("wake_up", req, url, self.timeouts.wake)
                .await
                .map(drop)
        })
    }

    fn is_sleeping<'a>(&'a self, base: &'a str) -> BoxFuture<'a, Result<bool, EngineError>> {
        Box::pin(async move {
            let url = join(base, "/is_sleeping");
            let req = self.client.get(&url);
            let body = self
                .call("is_sleeping", req, url.clone(), self.timeouts.call)
                .await?;
            parse_is_sleeping(&body).ok_or_else(|| EngineError::Decode {
                url,
                got: body.chars().take(200).collect(),
            })
        })
    }
}

/// `{"is_sleeping": bool}` → the bool.
pub fn parse_is_sleeping(body: &str) -> Option<bool> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("is_sleeping")?
        .as_bool()
}

/// What a verified call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The engine was already in the state asked for: nothing was sent.
    Already,
    /// The call was made and the new state read back.
    Done,
}

/// Puts the engine to sleep (level 1) and reads the state back.
pub async fn sleep_verified(
    engine: &dyn EngineControl,
    base: &str,
) -> Result<Transition, EngineError> {
    if engine.is_sleeping(base).await? {
        return Ok(Transition::Already);
    }
    engine.sleep(base).await?;
    match engine.is_sleeping(base).await? {
        true => Ok(Transition::Done),
        false => Err(EngineError::NotVerified {
            op: "sleep",
            base: base.to_string(),
            got: false,
        }),
    }
}

/// Wakes the engine and reads the state back.
pub async fn wake_verified(
    engine: &dyn EngineControl,
    base: &str,
) -> Result<Transition, EngineError> {
    if !engine.is_sleeping(base).await? {
        return Ok(Transition::Already);
    }
    engine.wake_up(base).await?;
    match engine.is_sleeping(base).await? {
        false => Ok(Transition::Done),
        true => Err(EngineError::NotVerified {
            op: "wake_up",
            base: base.to_string(),
            got: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_sleeping_bodies() {
        assert_eq!(parse_is_sleeping(r#"{"is_sleeping": true}"#), Some(true));
        assert_eq!(parse_is_sleeping(r#"{"is_sleeping":false}"#), Some(false));
        assert_eq!(parse_is_sleeping(r#"{"is_sleeping": "yes"}"#), None);
        assert_eq!(parse_is_sleeping("true"), None);
        assert_eq!(parse_is_sleeping(""), None);
    }

    #[test]
    fn urls_join_without_double_slashes() {
        assert_eq!(join("http://a:1/", "/sleep"), "http://a:1/sleep");
        assert_eq!(join("http://a:1", "/sleep"), "http://a:1/sleep");
    }
}
