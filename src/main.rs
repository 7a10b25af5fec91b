//! The `moongate` binary: command line, logging, worker threads, signals and the admin API.
//! Everything that decides how a request is answered lives in the library crates.
//!
//! Exit codes: 0 success; 1 invalid configuration (run, validate); 2 bad command line;
//! 3 the gateway could not start or failed while running (a port in use, for example).

mod admin;
mod control;
mod logging;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "moongate", version, about = "An API gateway scripted in Lua and reconfigured while it runs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// The gateway settings; API files are read from its `apis_dir`.
        #[arg(long, short, env = "MOONGATE_CONFIG", default_value = "config/gateway.yaml")]
        config: PathBuf,
    },
    /// Check the configuration (gateway.yaml, every API file, every script) and exit: 0 when valid,
    /// 1 with every error (file:line:col) otherwise.
    Validate {
        #[arg(long, short, env = "MOONGATE_CONFIG", default_value = "config/gateway.yaml")]
        config: PathBuf,
    },
    /// Run a small echo upstream that answers each request with a JSON description of it.
    Echo {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
    },
    /// Ask a running gateway's admin API for `/hello`: exit 0 when it answers 200, 1 otherwise
    /// (for container health checks, where there is no curl).
    Health {
        #[arg(long, env = "MOONGATE_ADMIN_LISTEN", default_value = "127.0.0.1:9696")]
        admin: String,
    },
    /// Print the JSON Schema of gateway.yaml (`gateway`) or of an API file (`api`), for editors.
    Schema {
        #[arg(value_parser = ["gateway", "api"])]
        which: String,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run::run(&config),
        Command::Validate { config } => match moongate_proxy::Generation::load(&config, 0) {
            Ok(generation) => {
                println!("{}: valid ({} APIs)", config.display(), generation.apis.len());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("{e}");
                }
                ExitCode::from(1)
            }
        },
        Command::Echo { listen } => match echo(listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("moongate echo: {e:#}");
                ExitCode::from(3)
            }
        },
        Command::Health { admin } => match health(&admin) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("moongate health: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Schema { which } => {
            let schemas = moongate_config::schemas();
            match serde_json::to_string_pretty(&schemas[which.as_str()]) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("moongate schema: {e}");
                    ExitCode::from(3)
                }
            }
        }
        Command::Version => {
            println!("moongate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn health(admin: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    // An admin listener on 0.0.0.0 is reached on loopback.
    let addr = admin.replace("0.0.0.0", "127.0.0.1");
    let timeout = std::time::Duration::from_secs(2);
    let sock = addr.parse().map_err(|e| anyhow::anyhow!("`{addr}` is not an address: {e}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /hello HTTP/1.0\r\nHost: moongate\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.split_whitespace().nth(1).unwrap_or("");
    anyhow::ensure!(status == "200", "/hello answered {:?}", answer.lines().next().unwrap_or(""));
    Ok(())
}

fn echo(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        eprintln!("moongate echo: listening on http://{}", listener.local_addr()?);
        tokio::select! {
            _ = moongate_proxy::echo::serve(listener) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
