//! A bare axum server that answers every `POST /graphql` with the same bytes: the
//! ceiling any HTTP service on this stack reaches on this machine. Used by
//! `benches/compare/compare.py --bare` to put the gateway's figures in proportion.
//!
//! `bare_server BODY_FILE` serves the file's bytes as `application/json` and prints
//! `listening on ADDR` (a free loopback port).
#![allow(clippy::print_stdout)]

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: bare_server BODY_FILE");
        std::process::exit(2);
    };
    let body = Bytes::from(std::fs::read(&path)?);
    let app = Router::new().route(
        "/graphql",
        post(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
