//! A LAN of Linux network namespaces for tests: one namespace ("machine") per role, joined by a
//! bridge that sits in a namespace of its own (the LAN's switch), on a private subnet that
//! exists only inside them. Nothing is added to the root namespace, so nothing a test's
//! processes send (multicast and DHT packets included) can leave the namespaces. Needs root
//! and iproute2. Dropping the [`Lan`] deletes every namespace it made, which takes the bridge
//! and the veth pairs with them.

use std::path::Path;
use std::process::Command;

use super::{require_root, require_tool, run, BT, SHORT};

/// The namespace that holds the bridge: the LAN's switch.
const SWITCH: &str = "switch";

/// Run `ip ARGS`; panic with what it said when it fails.
#[track_caller]
pub fn ip(args: &[&str]) {
    run(Command::new("ip").args(args), SHORT).success();
}

/// A LAN of network namespaces (`bt-TAG-PID-ROLE`) on the subnet 10.OCTET.X.0/24, X chosen
/// per run; the n-th role gets host address n + 1.
pub struct Lan {
    prefix: String,
    subnet: String,
    roles: Vec<String>,
    created: Vec<String>,
}

impl Lan {
    /// Build the LAN; fails (never skips) without root or `ip`.
    pub fn new(tag: &str, roles: &[&str], octet: u8) -> Lan {
        require_tool("ip", "iproute2");
        require_root("this test (it creates network namespaces)");
        let pid = std::process::id();
        let mut lan = Lan {
            prefix: format!("bt-{tag}-{pid}"),
            subnet: format!("10.{octet}.{}", pid % 250 + 1),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            created: Vec::new(),
        };
        // From here on a panic drops `lan`, which deletes what was made so far.
        let switch = lan.add_namespace(SWITCH);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for role in roles {
            let ns = lan.add_namespace(role);
            // Both ends are made inside the switch namespace; one then moves to the machine.
            let (port, nic) = (format!("p-{role}"), format!("v-{role}"));
            ip(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", &nic,
            ]);
            ip(&[
                "-n", &switch, "link", "set", &nic, "netns", &ns, "name", "eth0",
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            let cidr = format!("{}/24", lan.addr(role));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        lan
    }

    /// Create one namespace with its loopback up; remembered for the cleanup.
    fn add_namespace(&mut self, role: &str) -> String {
        let ns = self.ns(role);
        let out = run(Command::new("ip").args(["netns", "add", &ns]), SHORT);
        assert!(
            out.status.success(),
            "cannot create network namespace {ns} (needs root with CAP_SYS_ADMIN and \
             CAP_NET_ADMIN; a leftover of an earlier run? `ip netns del {ns}`): {}",
            out.stderr.trim()
        );
        self.created.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace of a role.
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// How many namespaces the LAN is made of (the switch included).
    pub fn namespaces(&self) -> usize {
        self.created.len()
    }

    /// The address of a role's machine.
    pub fn addr(&self, role: &str) -> String {
        let n = self.roles.iter().position(|r| r == role).expect("a role") + 1;
        format!("{}.{n}", self.subnet)
    }

    /// Route multicast (224.0.0.0/4: LSD's group) out of every machine's LAN interface, inside
    /// each namespace, and check that the group is reached through it.
    pub fn route_multicast(&self) {
        for role in &self.roles {
            let ns = self.ns(role);
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
            let out = run(
                Command::new("ip").args(["-n", &ns, "route", "get", "239.192.152.143"]),
                SHORT,
            )
            .success();
            assert!(out.stdout.contains("dev eth0"), "{ns}: {}", out.stdout);
        }
    }

    /// `program` on a role's machine, started in `dir`.
    pub fn exec(&self, role: &str, dir: &Path, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(role), program])
            .current_dir(dir)
            .env_remove("RUST_LOG");
        cmd
    }

    /// `bt` on a role's machine, started in that machine's folder.
    pub fn bt(&self, role: &str, machine: &Path) -> Command {
        self.exec(role, machine, BT)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let out = Command::new("ip").args(["netns", "del", ns]).output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "cannot delete network namespace {ns}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => eprintln!("cannot delete network namespace {ns}: {e}"),
            }
        }
    }
}
