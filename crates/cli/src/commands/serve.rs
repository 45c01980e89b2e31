//! `vramplan serve`: the interactive calculator page and its JSON API (crates/cli/src/web).
//!
//! The connection loop is ours, over hyper's HTTP/1 connection (hyper-util's tokio glue):
//! `axum::serve` has no header or idle timeout, no cap on connections, and waits for every
//! connection at shutdown. Here:
//! - at most `--max-connections` connections are open; further clients wait in the kernel's
//!   listen backlog until one closes;
//! - a client has `--header-timeout` seconds to send a request's headers, which also closes an
//!   idle keep-alive connection (hyper's `header_read_timeout` is armed while it waits for the
//!   next request), and `--body-timeout` seconds for a body (web/api.rs);
//! - an accept error (out of file descriptors: EMFILE/ENFILE) is waited out with a back-off and
//!   the server goes on serving the connections it has; the timeouts free descriptors;
//! - Ctrl-C or SIGTERM stops accepting, cancels the plan searches running, tells every
//!   connection to finish its current request, and exits within about a second.

use crate::Failure;
use clap::Args;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

// The server's modules live in src/web/ (router, handlers, page assets); declared here so that
// `serve` owns them.
#[path = "../web/mod.rs"]
pub mod web;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on. The default is loopback only; give 0.0.0.0 to serve other machines.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, short = 'p', default_value_t = 8080)]
    pub port: u16,
    /// A host name the server answers to (repeat for several). IP addresses and `localhost`
    /// are always answered; any other Host header is refused (DNS-rebinding protection).
    #[arg(long)]
    pub allowed_host: Vec<String>,
    /// Let pages from this origin (e.g. https://example.org) call the API. Without it the
    /// server sends no CORS permission at all.
    #[arg(long)]
    pub cors: Option<String>,
    /// Most connections open at once.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers; an idle keep-alive connection is
    /// closed after as long.
    #[arg(long, default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds a client has to send a request's body.
    #[arg(long, default_value_t = 10.0)]
    pub body_timeout: f64,
    /// Seconds a plan search may run before it answers with what it found (`truncated`).
    #[arg(long, default_value_t = 10.0)]
    pub plan_time_budget: f64,
    /// Answer catalogue names only: a `model` naming a Hugging Face repository is refused
    /// rather than read from the Hub (by default it is read server-side, from HF_ENDPOINT
    /// only, with the CLI's limits and cache).
    #[arg(long)]
    pub no_hub: bool,
    /// Seconds the Hub reads of one request may take in all.
    #[arg(long, default_value_t = 30.0)]
    pub hub_timeout: f64,
}

/// How long a connection may take to finish its request once the server is stopping.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);
/// Wait after an accept error before trying again (out of descriptors: let some close).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

fn seconds(flag: &str, v: f64) -> Result<Duration, Failure> {
    if !(v > 0.0 && v <= 3600.0) {
        return Err(Failure::input(format!(
            "--{flag} {v} must be a number of seconds in (0, 3600]"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

pub fn run(a: ServeArgs) -> Result<(), Failure> {
    if a.max_connections == 0 || a.max_connections > 1 << 20 {
        return Err(Failure::input(
            "--max-connections must be between 1 and 1048576",
        ));
    }
    let header_timeout = seconds("header-timeout", a.header_timeout)?;
    let cors = match &a.cors {
        None => None,
        Some(o) => Some(
            axum::http::HeaderValue::from_str(o)
                .ok()
                .filter(|_| o.starts_with("http://") || o.starts_with("https://"))
                .ok_or_else(|| {
                    Failure::input(format!(
                        "--cors '{o}' must be an origin such as https://example.org"
                    ))
                })?,
        ),
    };
    web::configure(web::Settings {
        body_timeout: seconds("body-timeout", a.body_timeout)?,
        plan_time_budget: seconds("plan-time-budget", a.plan_time_budget)?.as_secs_f64(),
        allowed_hosts: a.allowed_host.clone(),
        cors,
        hub: !a.no_hub,
        hub_timeout: seconds("hub-timeout", a.hub_timeout)?.as_secs_f64(),
    });
    // Two workers: the handlers are microseconds of arithmetic; more threads buy nothing. Timers
    // for the timeouts and the back-off.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the server runtime: {e}")))?;
    let result = runtime.block_on(serve(
        SocketAddr::new(a.host, a.port),
        a.max_connections,
        header_timeout,
    ));
    // Plan searches still running were cancelled; do not wait for stragglers.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn serve(
    addr: SocketAddr,
    max_connections: usize,
    header_timeout: Duration,
) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::runtime(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::runtime(e.to_string()))?;
    // Build the catalogue before the first request, so a request never pays for it.
    let _ = vramplan_core::catalogue();
    println!("vramplan calculator on http://{bound}/ (API at http://{bound}/api/v1/openapi.json); Ctrl-C stops it");
    if !bound.ip().is_loopback() {
        eprintln!(
            "note: listening on {} — other machines that can reach it can use the calculator",
            bound.ip()
        );
    }
    // Tests and scripts read the address from stdout as soon as it is printed.
    let _ = std::io::stdout().flush();

    let service = TowerToHyperService::new(web::router());
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut accept_errors = 0u64;
    loop {
        // A slot first: at the cap, clients wait in the backlog rather than take descriptors.
        let slot = tokio::select! {
            _ = &mut stop => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE/ENFILE (no descriptors), ECONNABORTED, ...: keep serving the open
                    // connections, and try again shortly. One note, not one per attempt.
                    if accept_errors == 0 {
                        eprintln!("note: accepting a connection failed ({e}); retrying");
                    }
                    accept_errors += 1;
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        let service = service.clone();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopping.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
                }
            }
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    // Stopping: no more accepts, cancel searches, let connections finish briefly.
    drop(listener);
    web::api::SHUTTING_DOWN.store(true, Ordering::Relaxed);
    let _ = stopping_tx.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_millis(100), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
    Ok(())
}
