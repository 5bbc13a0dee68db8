//! A real ACME server on loopback for the HTTPS tests: Debian's `pebble`, with its
//! `pebble-challtestsrv` as the DNS server it validates through (every name → 127.0.0.1).
//! Its own listener certificate is made with openssl at test time, signed by a throwaway CA
//! that paas is told to trust (`--acme-ca-file`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::free_port;

pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The CA that signed pebble's listener certificate: what paas must trust to talk to it.
    pub listener_ca: PathBuf,
    management: String,
    children: Vec<Child>,
    _dir: TempDir,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port` of
    /// 127.0.0.1, and waits until its directory answers.
    pub async fn start(http_port: u16, tls_port: u16) -> Pebble {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener_ca = make_listener_certificate(dir.path());
        let (acme, management, dns) = (free_port(), free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("pebble config");
        let log = |name: &str| {
            std::fs::File::create(dir.path().join(name)).map(Stdio::from).expect("log file")
        };
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv runs (apt-get install pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // Validations at once; nonces still rejected 5 % of the time, as by default,
            // so the client's badNonce retry is exercised.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble runs (apt-get install pebble)");
        let pebble = Pebble {
            directory: format!("https://127.0.0.1:{acme}/dir"),
            listener_ca,
            management: format!("https://127.0.0.1:{management}"),
            children: vec![dns_server, pebble],
            _dir: dir,
        };
        let client = pebble.client();
        crate::wait_until("pebble answers", Duration::from_secs(20), || async {
            client.get(&pebble.directory).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        pebble
    }

    /// A client trusting pebble's listener.
    fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.listener_ca).expect("listener CA");
        let ca = reqwest::Certificate::from_pem(&pem).expect("listener CA is PEM");
        reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .build()
            .expect("client")
    }

    /// The root that signs the certificates pebble issues (made anew at each start), PEM.
    pub async fn issuing_root(&self) -> String {
        let url = format!("{}/roots/0", self.management);
        let response = self.client().get(url).send().await.expect("pebble's management API");
        response.text().await.expect("the root")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A CA and a `localhost`/127.0.0.1 certificate it signs, for pebble's own listener;
/// returns the CA's path.
fn make_listener_certificate(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    std::fs::write(
        dir.join("leaf.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("extensions file");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=paas test ACME listener CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.cnf",
    ]);
    dir.join("ca.pem")
}
