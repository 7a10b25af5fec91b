//! The real `moongate` binary on a configuration in a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The admin secret of every test gateway.
pub const SECRET: &str = "test-secret";

/// Something done to the configuration directory before the gateway starts.
type Prepare = Box<dyn FnOnce(&Path)>;

pub struct GatewayBuilder {
    bin: PathBuf,
    settings: Vec<String>,
    apis: Vec<(String, String)>,
    scripts: Vec<(String, String)>,
    env: Vec<(String, String)>,
    workers: usize,
    secret: Option<String>,
    prepare: Vec<Prepare>,
}

impl GatewayBuilder {
    /// Runs `f` on the configuration directory before the gateway starts (custom layouts).
    pub fn prepare(mut self, f: impl FnOnce(&Path) + 'static) -> Self {
        self.prepare.push(Box::new(f));
        self
    }

    /// Extra `gateway.yaml` lines (top-level settings not written by the builder).
    pub fn setting(mut self, yaml: &str) -> Self {
        self.settings.push(yaml.to_owned());
        self
    }

    pub fn redis(self, url: &str) -> Self {
        self.setting(&format!("storage: {{ backend: redis, redis_url: \"{url}\", timeout_ms: 300 }}"))
    }

    /// An API file under `apis/`.
    pub fn api(mut self, file: &str, yaml: &str) -> Self {
        self.apis.push((file.to_owned(), yaml.to_owned()));
        self
    }

    /// A script under `scripts/`.
    pub fn script(mut self, file: &str, lua: &str) -> Self {
        self.scripts.push((file.to_owned(), lua.to_owned()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// `None`: no admin secret at all.
    pub fn secret(mut self, secret: Option<&str>) -> Self {
        self.secret = secret.map(str::to_owned);
        self
    }

    /// Writes the configuration and starts the binary; returns once both listeners accept.
    pub fn start(self) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("apis")).expect("apis dir");
        std::fs::create_dir_all(root.join("scripts")).expect("scripts dir");
        for (file, text) in &self.apis {
            std::fs::write(root.join("apis").join(file), text).expect("write api");
        }
        for (file, text) in &self.scripts {
            let path = root.join("scripts").join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("script dir");
            }
            std::fs::write(path, text).expect("write script");
        }
        for f in self.prepare {
            f(&root);
        }
        let addr: SocketAddr = ([127, 0, 0, 1], crate::free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], crate::free_port()).into();
        let own_apis_dir = self.settings.iter().any(|s| s.starts_with("apis_dir:"));
        let mut yaml = format!(
            "listen: \"{addr}\"\nworkers: {}\nadmin:\n  listen: \"{admin}\"\n{}{}scripts_dir: scripts\nlog: {{ format: json, level: \"info,moongate=debug\" }}\n",
            self.workers,
            self.secret.as_ref().map(|s| format!("  secret: \"{s}\"\n")).unwrap_or_default(),
            if own_apis_dir { "" } else { "apis_dir: apis\n" },
        );
        for s in &self.settings {
            yaml.push_str(s);
            yaml.push('\n');
        }
        let config = root.join("gateway.yaml");
        std::fs::write(&config, yaml).expect("write gateway.yaml");
        let mut gw = Gateway { bin: self.bin, config, addr, admin, dir, child: None, env: self.env };
        gw.spawn();
        gw
    }
}

pub struct Gateway {
    bin: PathBuf,
    config: PathBuf,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
    env: Vec<(String, String)>,
}

impl Gateway {
    pub fn builder(bin: impl Into<PathBuf>) -> GatewayBuilder {
        GatewayBuilder {
            bin: bin.into(),
            settings: Vec::new(),
            apis: Vec::new(),
            scripts: Vec::new(),
            env: Vec::new(),
            workers: 2,
            secret: Some(SECRET.to_owned()),
            prepare: Vec::new(),
        }
    }

    /// Starts the binary. A port that `free_port` handed out can be taken by another test before
    /// the gateway binds it; then the gateway is started again on fresh ports.
    fn spawn(&mut self) {
        for _ in 0..5 {
            match self.try_spawn() {
                Ok(()) => return,
                Err(logs) if logs.contains("Address already in use") => {
                    let text = std::fs::read_to_string(&self.config).expect("read gateway.yaml");
                    let addr: SocketAddr = ([127, 0, 0, 1], crate::free_port()).into();
                    let admin: SocketAddr = ([127, 0, 0, 1], crate::free_port()).into();
                    let text = text
                        .replace(&self.addr.to_string(), &addr.to_string())
                        .replace(&self.admin.to_string(), &admin.to_string());
                    std::fs::write(&self.config, text).expect("write gateway.yaml");
                    (self.addr, self.admin) = (addr, admin);
                    let _ = std::fs::remove_file(self.log_path());
                }
                Err(logs) => panic!("moongate exited before listening:\n{logs}"),
            }
        }
        panic!("moongate found no free ports in 5 tries");
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        cmd.env_remove("RUST_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start moongate"));
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("exit {status}\n{}", self.logs()));
            }
            if std::net::TcpStream::connect(self.addr).is_ok() && std::net::TcpStream::connect(self.admin).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("moongate did not listen within 15 s:\n{}", self.logs());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_file(&self) -> &Path {
        &self.config
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("moongate.log")
    }

    /// Everything the gateway has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends a signal by name (`TERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
        }
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Creates a key through the admin API and returns it.
    pub async fn create_key(&self, session: &serde_json::Value) -> String {
        let resp = crate::request(
            "POST",
            &self.admin_url("/tyk/keys/create"),
            &[("x-tyk-authorization", SECRET)],
            &session.to_string(),
        )
        .await;
        assert_eq!(resp.status, 200, "create key: {}", resp.body);
        resp.json()["key"].as_str().expect("key in answer").to_owned()
    }

    /// A call to the admin API with the test secret.
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> crate::Resp {
        crate::request(method, &self.admin_url(path), &[("x-tyk-authorization", SECRET)], body).await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
