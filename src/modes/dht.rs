//! `bt dht`: a bare Mainline DHT node in server mode, holding no torrent: the bootstrap node
//! of a LAN or of a test. Prints its address, then its routing-table size when it changes.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};

use super::engine;
use crate::cli::DhtArgs;
use crate::swarm::dht::{self, DhtSettings};

/// How often the routing-table size is looked at.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Run `bt dht`.
pub fn run(args: DhtArgs) -> Result<()> {
    let settings = DhtSettings {
        port: args.port,
        bind: args.bind.unwrap_or(Ipv4Addr::UNSPECIFIED),
        bootstrap: args.bootstrap,
        first: true,
        server: true,
        nodes_file: None,
    };
    let stop = engine::stop_signal()?;
    crate::rt::block_on(async move {
        let node = dht::build(&settings)
            .with_context(|| format!("cannot start a DHT node on UDP port {}", settings.port))?;
        let (addr, size) = dht::describe(&node).await;
        println!("dht node listening on {addr} (UDP), routing table: {size} nodes");
        let mut last = size;
        while crate::rt::timeout(REPORT_EVERY, stop.recv()).await.is_err() {
            let (_, size) = dht::describe(&node).await;
            if size != last {
                println!("routing table: {size} nodes");
                last = size;
            }
        }
        println!("stopping");
        Ok(())
    })
}
