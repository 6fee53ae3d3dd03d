//! Helpers the binary's tests share: `fanout dev` as a child process.

#![allow(clippy::unwrap_used, dead_code)] // tests: a panic is the failure report

use std::process::{Child, Command, Stdio};

/// Run the `fanout` CLI against the engine on `grpc` (with `key` as
/// `--api-key`; the environment's key and namespace are ignored): exit
/// code, stdout, stderr.
pub fn cli(grpc: u16, key: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fanout"));
    c.env_remove("FANOUT_API_KEY")
        .env_remove("FANOUT_NAMESPACE")
        .arg("--server")
        .arg(format!("http://127.0.0.1:{grpc}"));
    if let Some(k) = key {
        c.arg("--api-key").arg(k);
    }
    let out = c.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `field` of each JSON line of `out`.
pub fn json_field(out: &str, field: &str) -> Vec<String> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v[field].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

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
    let (g, grpc, http, _) = start_with(dir, &[]);
    (g, grpc, http)
}

/// [`start`] with more `dev` flags; also returns the admin key the first
/// start prints with `--auth`.
pub fn start_with(dir: &std::path::Path, extra: &[&str]) -> (Guard, u16, u16, Option<String>) {
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
        .args(extra)
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
    let (mut grpc, mut http, mut key) = (None, None, None);
    while grpc.is_none() || http.is_none() {
        let line = lines
            .next()
            .expect("fanout dev exited before printing its addresses")
            .unwrap();
        if line.trim_start().starts_with("fo_") {
            key = Some(line.trim().to_string());
        } else if line.trim_start().starts_with("gRPC:") {
            grpc = Some(port(&line));
        } else if line.trim_start().starts_with("HTTP:") {
            http = Some(port(&line));
        }
    }
    // Keep draining stdout so the engine never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Guard(child), grpc.unwrap(), http.unwrap(), key)
}
