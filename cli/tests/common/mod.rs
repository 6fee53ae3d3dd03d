//! Helpers the binary's tests share: `fanout dev` as a child process.

#![allow(clippy::unwrap_used, dead_code)] // tests: a panic is the failure report

use std::process::{Child, Command, Stdio};

/// A child process killed when the guard drops, so a failing test leaves
/// no engine or worker behind to take the next test's runs.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Guard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Start `fanout dev` on `dir` with ports the OS picks, and read the
/// addresses it prints (no port is guessed, so parallel tests cannot
/// collide). Returns the process and its gRPC and HTTP ports.
pub fn start(dir: &std::path::Path) -> (Guard, u16, u16) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args([
            "dev",
            "--data-dir",
            dir.to_str().unwrap(),
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    let port = |line: &str| -> u16 {
        let addr = line
            .split("http://")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        addr.rsplit(':').next().unwrap().parse().unwrap()
    };
    let (mut grpc, mut http) = (None, None);
    while grpc.is_none() || http.is_none() {
        let line = lines
            .next()
            .expect("fanout dev exited before printing its addresses")
            .unwrap();
        if line.trim_start().starts_with("gRPC:") {
            grpc = Some(port(&line));
        } else if line.trim_start().starts_with("HTTP:") {
            http = Some(port(&line));
        }
    }
    // Keep draining stdout so the engine never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Guard(child), grpc.unwrap(), http.unwrap())
}
