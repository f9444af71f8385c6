//! `magflock`: the reference server built with MagMoBo, and its command line.
//!
//! Built only from MagMoBo's public API, the way a user builds their own board: a hyper CPU,
//! an SQL storage chosen by URL, the API-key PSU and the MagGate REST extension.

mod commands;
mod logs;
mod scan;
mod settings;
mod sql_split;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  magflock init todo                      create ./todo with a database and two API keys
  magflock --project todo sql \"create table notes (id integer primary key, body text)\"
  magflock --project todo start           serve http://127.0.0.1:8080/rest/v1/notes
  magflock start --database-url postgres://postgres@127.0.0.1/app
  magflock keys create --name ci --role service_role";

/// MagFlock: an instant, safe REST backend over SQLite, PostgreSQL or MariaDB.
#[derive(Debug, Parser)]
#[command(name = "magflock", version, after_help = EXAMPLES)]
struct Cli {
    /// Project folder to act on (default: the current folder).
    #[arg(long, global = true, env = "MAGFLOCK_PROJECT", value_name = "DIR")]
    project: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a project folder with a commented magflock.toml, an SQLite database and keys.
    #[command(
        after_help = "Example:\n  magflock init todo\n  magflock init todo --json | jq -r .anon_key"
    )]
    Init {
        /// Name of the folder to create.
        name: PathBuf,
        /// Print one JSON object (with anon_key and service_role_key) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Boot the server with the POST screen and serve until Ctrl-C or SIGTERM.
    #[command(
        after_help = "Examples:\n  magflock start\n  magflock start --listen 0.0.0.0:8080 --database-url postgres://postgres@127.0.0.1/app"
    )]
    Start(ServerArgs),
    /// Run SQL against the project's database with the owner's rights (argument or stdin).
    #[command(
        after_help = "Examples:\n  magflock sql \"create table notes (id integer primary key, body text)\"\n  magflock sql < schema.sql"
    )]
    Sql {
        /// The statements; read from standard input when absent.
        statement: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run the power-on self-test without serving.
    #[command(
        after_help = "Example:\n  magflock doctor --database-url postgres://postgres@127.0.0.1/app"
    )]
    Doctor(ServerArgs),
    /// Print the effective configuration (secrets masked) and where each value came from.
    Config {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sentinel tools.
    #[command(subcommand)]
    Sentinel(SentinelCommand),
    /// Read the audit log: blocked attacks, rejected keys, extension changes.
    #[command(
        after_help = "Examples:\n  magflock logs --kind threat --since 1h\n  magflock logs --follow --json\n  magflock logs --verify"
    )]
    Logs(LogsArgs),
}

#[derive(Debug, Subcommand)]
enum SentinelCommand {
    /// Judge values (one per line on stdin) or requests (`--requests`, one JSON per line).
    #[command(
        after_help = "Output: one line per input, `attack <confidence> <agent>` or `benign <confidence>`.\n\nExamples:\n  echo \"1' OR '1'='1\" | magflock sentinel scan\n  echo '{\"method\":\"GET\",\"path\":\"/rest/v1/users\",\"query\":{\"id\":\"eq.1 union select 1\"}}' | magflock sentinel scan --requests"
    )]
    Scan {
        /// Read one JSON request per line: method, path, query, headers, body.
        #[arg(long)]
        requests: bool,
    },
}

#[derive(Debug, Clone, Args)]
struct LogsArgs {
    /// Only kinds starting with this, e.g. `threat` or `auth.key`.
    #[arg(long)]
    kind: Option<String>,
    /// Only this identity (key id, user id).
    #[arg(long)]
    identity: Option<String>,
    /// Only this source address.
    #[arg(long)]
    source: Option<String>,
    /// Only entries newer than this: 30s, 10m, 2h, 7d.
    #[arg(long, value_name = "AGE")]
    since: Option<String>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Keep printing new entries as they arrive.
    #[arg(long)]
    follow: bool,
    /// Check the hash chain instead of printing entries; non-zero exit when broken.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
struct ServerArgs {
    /// Address to listen on [env: MAGFLOCK_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Database URL: sqlite://file.db, postgres://..., mysql://... [env: MAGFLOCK_DATABASE_URL].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once.
    #[command(
        after_help = "Example:\n  magflock keys create --name mobile-app --role anon --expires-in-days 90"
    )]
    Create {
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
        /// The role it acts as (anon, service_role, or your own).
        #[arg(long, default_value = "anon")]
        role: String,
        /// Days until it expires (never by default).
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a key by its id or visible prefix (mf_...).
    Revoke {
        /// The key's id or prefix.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAGFLOCK_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("magflock: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(commands::Failure::Reported) => ExitCode::FAILURE,
        Err(commands::Failure::Message(message)) => {
            eprintln!("magflock: {message}");
            ExitCode::FAILURE
        }
    }
}
