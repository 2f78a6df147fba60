//! A real S3-compatible server for the remote-storage tests: moto in server mode on
//! 127.0.0.1 (tests/s3/moto_server.py), with authentication enforced, and a TCP
//! proxy in front of it that a test can cut, as a server dying mid-upload would.

use statebackend::RemoteOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A running moto server. It stops when the test process exits (its stdin closes).
pub struct Moto {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    _child: Child,
    _stdin: ChildStdin,
}

/// The Python that has moto: `STATEBACKEND_PYTHON` (scripts/setup.sh sets it up).
pub fn python() -> PathBuf {
    std::env::var_os("STATEBACKEND_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

impl Moto {
    /// Starts a new server.
    pub fn start() -> Moto {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/s3/moto_server.py");
        let mut child = Command::new(python())
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "the moto server did not start (is moto installed for {}? \
                 `source scripts/setup.sh` installs it and sets STATEBACKEND_PYTHON)",
                python().display()
            )
        });
        let field = |k: &str| info[k].as_str().unwrap().to_string();
        Moto {
            endpoint: field("endpoint"),
            access_key: field("access_key"),
            secret_key: field("secret_key"),
            bucket: field("bucket"),
            _stdin: child.stdin.take().unwrap(),
            _child: child,
        }
    }

    /// One server shared by the tests of a test binary.
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(Moto::start)
    }

    /// Options that reach this server through `endpoint`.
    pub fn options_via(&self, endpoint: &str) -> RemoteOptions {
        RemoteOptions {
            endpoint: Some(endpoint.to_string()),
            region: Some("us-east-1".into()),
            access_key: Some(self.access_key.clone()),
            secret_key: Some(self.secret_key.clone()),
            session_token: None,
            path_style: Some(true),
        }
    }

    pub fn options(&self) -> RemoteOptions {
        self.options_via(&self.endpoint)
    }

    /// The `s3.*` configuration pairs for this server.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("s3.endpoint", self.endpoint.clone()),
            ("s3.access-key", self.access_key.clone()),
            ("s3.secret-key", self.secret_key.clone()),
            ("s3.path.style.access", "true".into()),
        ]
    }

    /// The AWS environment variables for this server (for programs that read them).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// A fresh `s3://` checkpoint URL in the server's bucket.
    pub fn url(&self, name: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        format!(
            "s3://{}/{name}-{}-{}",
            self.bucket,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// A TCP proxy to `target` on a port of its own. [`Proxy::cut_after`] makes it
/// drop every connection once that many more bytes went up, and refuse new ones:
/// to the client, the server died in the middle of a request.
pub struct Proxy {
    pub endpoint: String,
    cut: Arc<AtomicBool>,
    budget: Arc<AtomicU64>,
    armed: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(target: &str) -> Proxy {
        let target = target.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let proxy = Proxy {
            endpoint,
            cut: Arc::new(AtomicBool::new(false)),
            budget: Arc::new(AtomicU64::new(0)),
            armed: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        let (cut, budget, armed, conns) = (
            proxy.cut.clone(),
            proxy.budget.clone(),
            proxy.armed.clone(),
            proxy.conns.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                conns.lock().unwrap().push(client.try_clone().unwrap());
                conns.lock().unwrap().push(server.try_clone().unwrap());
                let up = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (c2, b2, a2, n2) = (cut.clone(), budget.clone(), armed.clone(), conns.clone());
                std::thread::spawn(move || pump_up(up.0, up.1, &c2, &b2, &a2, &n2));
                std::thread::spawn(move || pump(server, client));
            }
        });
        proxy
    }

    /// Cuts every connection once `bytes` more bytes have gone to the server.
    pub fn cut_after(&self, bytes: u64) {
        self.budget.store(bytes, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn pump_up(
    mut from: TcpStream,
    mut to: TcpStream,
    cut: &AtomicBool,
    budget: &AtomicU64,
    armed: &AtomicBool,
    conns: &Mutex<Vec<TcpStream>>,
) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || cut.load(Ordering::SeqCst) {
            break;
        }
        if armed.load(Ordering::SeqCst) {
            let left = budget.load(Ordering::SeqCst);
            if (n as u64) >= left {
                // Half a request reaches the server, then the server is gone.
                let _ = to.write_all(&buf[..left as usize]);
                cut.store(true, Ordering::SeqCst);
                for c in conns.lock().unwrap().iter() {
                    let _ = c.shutdown(Shutdown::Both);
                }
                break;
            }
            budget.fetch_sub(n as u64, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
