//! The exporter's HTTP/1.1 server (hyper): `/probe`, `/metrics`, `/results`, `/`.
//!
//! Every connection is a task; a request's headers must arrive within [`HEADER_TIMEOUT`], at most
//! [`MAX_CONNECTIONS`] connections are served at once, and at most `--max-probes` probes run at once: a
//! probe request beyond that is answered at once with 503, never queued.

// Requests from the network: no panics (see ARCHITECTURE.md, Hostile input).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::unchecked_time_subtraction
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::config::{Config, Module, canonical_target};
use super::metrics::{self, Measured};
use super::state::{Own, Recent, Recents, Refused};
use crate::check::{Need, Outcome};

/// A request's headers must arrive within this time (a client that trickles them holds a connection).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 512;
/// The header in which Prometheus sends its scrape timeout.
pub const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";
/// The longest query string read.
const MAX_QUERY: usize = 4096;

/// What every request reads.
pub struct Exporter {
    pub config: Config,
    pub probes: Arc<Semaphore>,
    pub max_probes: usize,
    /// Subtracted from the scrape's timeout, for the answer to reach Prometheus in time.
    pub timeout_offset: Duration,
    pub own: Own,
    pub recent: Recents,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    let mut body = body.into();
    body.push('\n');
    answer(status, "text/plain; charset=utf-8", body)
}

/// Accepts connections on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted: go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let exporter = exporter.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let exporter = exporter.clone();
                async move { Ok::<_, Infallible>(route(&exporter, req, peer).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

async fn route(exporter: &Exporter, req: Request<Incoming>, peer: SocketAddr) -> Answer {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET");
    }
    match req.uri().path() {
        "/probe" => probe(exporter, &req).await,
        "/metrics" => match exporter.own.encode() {
            Ok(body) => answer(StatusCode::OK, metrics::CONTENT_TYPE, body),
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics",
            ),
        },
        "/results" => {
            let mut body = String::new();
            for r in exporter.recent.snapshot() {
                if let Some(doc) = &r.document {
                    body.push_str(doc);
                }
            }
            answer(StatusCode::OK, "application/x-ndjson", body)
        }
        "/" => answer(
            StatusCode::OK,
            "text/html; charset=utf-8",
            super::page::render(&exporter.config, &exporter.recent.snapshot()),
        ),
        _ => {
            tracing::debug!(%peer, path = req.uri().path(), "not found");
            text(
                StatusCode::NOT_FOUND,
                "not found: /probe, /metrics, /results or /",
            )
        }
    }
}

/// Why a probe request is refused.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    #[error("the query string is too long")]
    QueryTooLong,
    #[error("target is missing: /probe?target=HOST[:PORT]&module=NAME")]
    NoTarget,
    #[error("module is missing: one of {0}")]
    NoModule(String),
    #[error("unknown module {0}")]
    UnknownModule(String),
    #[error(
        "passwords are never taken from the URL: give password-env or password-file in the module"
    )]
    PasswordInUrl,
    #[error("bad target: {0}")]
    Target(String),
    #[error("module {module} may not probe {target} (allowed-targets)")]
    NotAllowed { module: String, target: String },
    #[error("bad {SCRAPE_TIMEOUT_HEADER} header")]
    ScrapeTimeout,
    #[error("the scrape timeout of {0} s leaves no time for a probe after --timeout-offset")]
    NoTime(f64),
}

/// The parameters of `/probe`.
struct Asked<'a> {
    module: &'a Module,
    target: String,
    debug: bool,
    deadline: Duration,
}

fn parse<'a>(exporter: &'a Exporter, req: &Request<Incoming>) -> Result<Asked<'a>, BadRequest> {
    let query = req.uri().query().unwrap_or_default();
    if query.len() > MAX_QUERY {
        return Err(BadRequest::QueryTooLong);
    }
    let mut target = None;
    let mut module = None;
    let mut debug = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "target" => target = Some(v.into_owned()),
            "module" => module = Some(v.into_owned()),
            "debug" => debug = matches!(v.as_ref(), "true" | "1" | "yes"),
            k if k.to_ascii_lowercase().contains("pass") => return Err(BadRequest::PasswordInUrl),
            _ => {}
        }
    }
    let target = target
        .filter(|t| !t.is_empty())
        .ok_or(BadRequest::NoTarget)?;
    let names = || {
        exporter
            .config
            .modules
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name = module.ok_or_else(|| BadRequest::NoModule(names()))?;
    let module = exporter
        .config
        .modules
        .get(&name)
        .ok_or(BadRequest::UnknownModule(name))?;
    let canonical = canonical_target(&target).map_err(BadRequest::Target)?;
    if !module.allows(&canonical) {
        return Err(BadRequest::NotAllowed {
            module: module.name.clone(),
            target: canonical,
        });
    }
    let deadline = match req.headers().get(SCRAPE_TIMEOUT_HEADER) {
        None => module.timeout,
        Some(v) => {
            let scrape: f64 = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                .ok_or(BadRequest::ScrapeTimeout)?;
            let left = scrape - exporter.timeout_offset.as_secs_f64();
            if left < 0.05 {
                return Err(BadRequest::NoTime(scrape));
            }
            module
                .timeout
                .min(Duration::from_secs_f64(left.min(3600.0)))
        }
    };
    Ok(Asked {
        module,
        target,
        debug,
        deadline,
    })
}

async fn probe(exporter: &Exporter, req: &Request<Incoming>) -> Answer {
    let asked = match parse(exporter, req) {
        Ok(a) => a,
        Err(e) => {
            exporter.own.refused(Refused::BadRequest);
            return text(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let Ok(permit) = exporter.probes.clone().try_acquire_owned() else {
        exporter.own.refused(Refused::Busy);
        tracing::warn!(target = %asked.target, limit = exporter.max_probes, "probe refused: busy");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} probes are running (--max-probes); this one did not start",
                exporter.max_probes
            ),
        );
    };
    let cfg = match asked.module.probe_config(&asked.target, asked.deadline) {
        Ok(c) => c,
        Err(e) => {
            exporter.own.refused(Refused::BadRequest);
            return text(StatusCode::BAD_REQUEST, format!("bad target: {e}"));
        }
    };
    let running = exporter.own.start();
    let module = asked.module.clone();
    let debug = asked.debug;
    let deadline = asked.deadline;
    // A task of its own: a panic in a probe is an error answer, not a lost connection.
    let done = tokio::spawn(async move {
        let done = run(&module, cfg, deadline, debug).await;
        drop(permit);
        done
    })
    .await;
    drop(running);
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            exporter.own.refused(Refused::Internal);
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the probe ended without a result: {e}"),
            );
        }
    };
    exporter.own.probed(
        &asked.module.name,
        done.measured.success,
        done.measured.duration_seconds,
    );
    let body = match done.measured.encode() {
        Ok(b) => b,
        Err(_) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics",
            );
        }
    };
    tracing::info!(
        target = %asked.target,
        module = %asked.module.name,
        success = done.measured.success,
        phase = %done.recent.phase,
        cause = %done.recent.cause,
        "probed"
    );
    exporter.recent.push(done.recent);
    match done.timeline {
        Some(timeline) => text(
            StatusCode::OK,
            format!("{timeline}\nMetrics that would have been returned:\n{body}"),
        ),
        None => answer(StatusCode::OK, metrics::CONTENT_TYPE, body),
    }
}

/// A probe run for a request.
struct Done {
    measured: Measured,
    recent: Recent,
    /// With `debug=true`: the timeline and the expectations' judgement.
    timeline: Option<String>,
}

/// Probes with `cfg` (its timeout already within `deadline`), judges the module's expectations in what
/// time is left, and measures.
async fn run(
    module: &Module,
    cfg: crate::probe::ProbeConfig,
    deadline: Duration,
    debug: bool,
) -> Done {
    let started = Instant::now();
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let trace = crate::probe::probe(&cfg).await;
    let verdict = crate::diagnose::diagnose(&trace);
    let outcomes = if module.expect.is_empty() {
        Vec::new()
    } else {
        let left = deadline.saturating_sub(started.elapsed());
        let all = crate::check::evaluate(&cfg, &module.expect, Some((&trace, &verdict)));
        match tokio::time::timeout(left, all).await {
            Ok(outcomes) => outcomes,
            Err(_) => {
                // The expectations judged on the trace need no connection; the others ran out of time.
                let on_trace: Vec<_> = module
                    .expect
                    .iter()
                    .filter(|e| e.need() == Need::Probe)
                    .cloned()
                    .collect();
                let mut judged = crate::check::evaluate(&cfg, &on_trace, Some((&trace, &verdict)))
                    .await
                    .into_iter();
                module
                    .expect
                    .iter()
                    .map(|e| match e.need() {
                        Need::Probe => judged
                            .next()
                            .unwrap_or_else(|| Outcome::unjudged(e, "not judged".to_owned())),
                        _ => Outcome::unjudged(
                            e,
                            "not judged: the scrape's deadline passed first".to_owned(),
                        ),
                    })
                    .collect()
            }
        }
    };
    let passed = if module.expect.is_empty() {
        verdict.ok
    } else {
        crate::check::all_hold(&outcomes)
    };
    let seconds = started.elapsed().as_secs_f64();
    let measured = Measured::new(&trace, &verdict, &outcomes, passed, seconds);
    let timeline = debug.then(|| {
        let mut t = crate::report::text::render(
            &trace,
            &verdict,
            crate::report::text::Options { verbose: false },
        );
        if !outcomes.is_empty() {
            t.push('\n');
            t.push_str(&crate::check::render(&cfg.target, &outcomes));
        }
        t
    });
    let mut doc = crate::report::json::document(&trace, &verdict);
    if let Some(map) = doc.as_object_mut() {
        map.insert("module".to_owned(), module.name.clone().into());
        if !outcomes.is_empty()
            && let Ok(v) = crate::report::json_value(&outcomes)
        {
            map.insert("expectations".to_owned(), v);
        }
    }
    let document = format!("{doc}\n");
    let recent = Recent {
        at,
        target: cfg.target.clone(),
        module: module.name.clone(),
        success: passed,
        phase: if verdict.ok {
            "active".to_owned()
        } else {
            verdict.phase.map_or("-", |p| p.as_str()).to_owned()
        },
        cause: verdict.cause.as_str().to_owned(),
        detail: verdict.detail.clone(),
        seconds,
        document: (document.len() <= super::state::MAX_DOCUMENT).then_some(document),
    };
    Done {
        measured,
        recent,
        timeline,
    }
}
