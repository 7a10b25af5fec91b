//! A real `redis-server` on a free loopback port, in a temporary directory, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut r = Self { port: crate::free_port(), dir, child: None };
        r.spawn();
        r
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts redis-server; when the port was taken meanwhile (it exits at once), a fresh one is
    /// tried, except on `restart`, which must keep its port.
    fn spawn(&mut self) {
        self.spawn_on_port(true);
    }

    fn spawn_on_port(&mut self, may_move: bool) {
        for _ in 0..5 {
            if self.try_spawn() {
                return;
            }
            if !may_move {
                break;
            }
            self.port = crate::free_port();
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn try_spawn(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install -y redis-server)");
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return false;
            }
            // Our own server, not another test's that holds the port: compare process ids.
            let info: Option<String> =
                self.connection().ok().and_then(|mut c| redis::cmd("INFO").arg("server").query(&mut c).ok());
            if info.is_some_and(|i| i.contains(&format!("process_id:{}\r", child.id()))) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills the server (the port stays reserved for `restart`).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_on_port(false);
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.url())?;
        client.get_connection_with_timeout(Duration::from_secs(1))
    }

    /// Runs one command and returns its reply.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut conn = self.connection().expect("redis connection");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut conn).expect("redis command")
    }

    /// Every key in the database.
    pub fn keys(&self) -> Vec<String> {
        self.cmd(&["KEYS", "*"])
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
