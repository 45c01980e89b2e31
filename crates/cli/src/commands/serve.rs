//! `vramplan serve`: the interactive calculator page and its JSON API (crates/cli/src/web).

use crate::Failure;
use clap::Args;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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
}

pub fn run(a: ServeArgs) -> Result<(), Failure> {
    // Two workers: the handlers are microseconds of arithmetic; more threads buy nothing.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the server runtime: {e}")))?;
    runtime.block_on(serve(SocketAddr::new(a.host, a.port)))
}

async fn serve(addr: SocketAddr) -> Result<(), Failure> {
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
    axum::serve(listener, web::router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Failure::runtime(format!("server stopped: {e}")))
}
