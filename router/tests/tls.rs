//! HTTPS at the router: certificates picked by SNI (exact before wildcard), HTTP/2 by ALPN,
//! what apps see, redirects and HSTS, ACME challenge answers (HTTP-01 and TLS-ALPN-01),
//! certificates swapped under load, WebSockets over TLS, and a bad certificate left out.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use paas_router::{CertificatePem, Route, RouteTable, Router, RouterConfig, TlsTable};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::*;

/// A private CA that signs the test certificates, as Let's Encrypt would.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    fn root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_der(self.issuer.der()).unwrap()
    }

    /// A certificate for `names`, served for `names`.
    fn certificate(&self, names: &[&str]) -> CertificatePem {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names.clone()).unwrap().signed_by(&key, &self.issuer);
        CertificatePem { hosts: names, chain: cert.unwrap().pem(), key: key.serialize_pem() }
    }
}

fn der_of(pem: &CertificatePem) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.chain.as_bytes()).next().unwrap().unwrap().to_vec()
}

/// A router serving `table` on a plain and a TLS listener.
async fn tls_router(table: RouteTable, tls: &TlsTable) -> (Router, SocketAddr, SocketAddr) {
    let router = Router::new(RouterConfig::default());
    let _ = router.set_table(&table);
    assert!(router.set_tls(tls).is_empty());
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let secure = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http, https) = (plain.local_addr().unwrap(), secure.local_addr().unwrap());
    let serving = router.clone();
    tokio::spawn(async move { serving.serve(plain, std::future::pending()).await });
    let serving = router.clone();
    tokio::spawn(async move { serving.serve_tls(secure, std::future::pending()).await });
    (router, http, https)
}

/// An HTTPS client trusting `ca`, sending every name in `hosts` to `addr`.
fn https_client(ca: &TestCa, hosts: &[&str], addr: SocketAddr) -> reqwest::Client {
    https_client_builder(ca, hosts, addr).build().unwrap()
}

/// The same speaking HTTP/1.1 only.
fn http1_client(ca: &TestCa, hosts: &[&str], addr: SocketAddr) -> reqwest::Client {
    https_client_builder(ca, hosts, addr).http1_only().build().unwrap()
}

fn https_client_builder(ca: &TestCa, hosts: &[&str], addr: SocketAddr) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.root())
        .tls_info(true);
    for host in hosts {
        builder = builder.resolve(host, addr);
    }
    builder
}

fn peer_der(response: &reqwest::Response) -> Vec<u8> {
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

fn shop_route(hosts: &[&str], backend: SocketAddr) -> Route {
    route("shop", hosts, &[backend])
}

#[tokio::test]
async fn serves_the_most_specific_certificate_over_http2() {
    let app = backend("alpha").await;
    let ca = TestCa::new();
    let (exact, wildcard) = (ca.certificate(&["shop.apps.test"]), ca.certificate(&["*.apps.test"]));
    // The wildcard is listed first: specificity decides, not order.
    let tls =
        TlsTable { certificates: vec![wildcard.clone(), exact.clone()], ..TlsTable::default() };
    let hosts = ["shop.apps.test", "blog.apps.test"];
    let table = RouteTable { routes: vec![shop_route(&hosts, app.addr)] };
    let (_router, _, https) = tls_router(table, &tls).await;
    let client = https_client(&ca, &["shop.apps.test", "blog.apps.test", "a.b.apps.test"], https);
    let port = https.port();

    let response = client.get(format!("https://shop.apps.test:{port}/name")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "HTTP/2 by ALPN");
    assert_eq!(peer_der(&response), der_of(&exact));
    assert_eq!(response.text().await.unwrap(), "alpha");

    let response = client.get(format!("https://blog.apps.test:{port}/name")).send().await.unwrap();
    assert_eq!(peer_der(&response), der_of(&wildcard));

    // A wildcard covers one label; with no certificate the handshake fails.
    let err = client.get(format!("https://a.b.apps.test:{port}/")).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    // HTTP/1.1 clients are served too.
    let http1 = http1_client(&ca, &["shop.apps.test"], https);
    let response = http1.get(format!("https://shop.apps.test:{port}/name")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.text().await.unwrap(), "alpha");
}

#[tokio::test]
async fn apps_see_https_their_host_and_port() {
    let app = backend("alpha").await;
    let ca = TestCa::new();
    let tls =
        TlsTable { certificates: vec![ca.certificate(&["shop.apps.test"])], ..TlsTable::default() };
    let table = RouteTable { routes: vec![shop_route(&["shop.apps.test"], app.addr)] };
    let (_router, _, https) = tls_router(table, &tls).await;
    let client = https_client(&ca, &["shop.apps.test"], https);
    let port = https.port();
    let response = client.get(format!("https://shop.apps.test:{port}/headers")).send().await;
    let seen = response.unwrap().text().await.unwrap();
    assert!(seen.contains("x-forwarded-proto: https\n"), "{seen}");
    assert!(seen.contains(&format!("x-forwarded-port: {port}\n")), "{seen}");
    // HTTP/2 carries the host as the request's authority; the app gets a Host header.
    assert!(seen.contains(&format!("host: shop.apps.test:{port}\n")), "{seen}");
}

#[tokio::test]
async fn plain_http_redirects_to_https_only_where_a_certificate_is() {
    let app = backend("alpha").await;
    let ca = TestCa::new();
    let mut secure = shop_route(&["shop.apps.test", "nocert.apps.test"], app.addr);
    secure.https_redirect = true;
    secure.hsts = true;
    let mut relaxed = route("blog", &["blog.apps.test"], &[app.addr]);
    relaxed.https_redirect = false;
    let certificates = vec![ca.certificate(&["shop.apps.test", "blog.apps.test"])];
    let tls = TlsTable { certificates, ..TlsTable::default() };
    let (_router, http, https) =
        tls_router(RouteTable { routes: vec![secure, relaxed] }, &tls).await;
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |host: &'static str, path: &'static str| {
        no_redirects.post(format!("http://{http}{path}")).header("host", host).send()
    };

    let response = get("shop.apps.test", "/name?x=1").await.unwrap();
    assert_eq!(response.status(), 308, "keeps the method and body");
    let port = https.port();
    assert_eq!(response.headers()["location"], format!("https://shop.apps.test:{port}/name?x=1"));
    // No certificate for this host yet: served over HTTP rather than sent to a broken page.
    let response = get("nocert.apps.test", "/name").await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("strict-transport-security"));
    // An app that turned redirects off.
    assert_eq!(get("blog.apps.test", "/name").await.unwrap().status(), 200);

    let client = https_client(&ca, &["shop.apps.test", "blog.apps.test"], https);
    let response = client.get(format!("https://shop.apps.test:{port}/name")).send().await.unwrap();
    assert_eq!(response.headers()["strict-transport-security"], "max-age=31536000");
    let response = client.get(format!("https://blog.apps.test:{port}/name")).send().await.unwrap();
    assert!(!response.headers().contains_key("strict-transport-security"));
    // The same over HTTP/1.1, whose plain requests the router reads itself rather than hyper.
    let http1 = http1_client(&ca, &["shop.apps.test", "blog.apps.test"], https);
    for (host, hsts) in [("shop", true), ("blog", false)] {
        let url = format!("https://{host}.apps.test:{port}/name");
        let response = http1.get(url).send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_11);
        let sent = response.headers().get("strict-transport-security");
        assert_eq!(sent.is_some(), hsts, "{host}");
    }
}

#[tokio::test]
async fn http01_challenges_are_answered_before_routing_and_redirects() {
    let app = backend("alpha").await;
    let ca = TestCa::new();
    let mut secure = shop_route(&["shop.apps.test"], app.addr);
    secure.https_redirect = true;
    let tls = TlsTable {
        certificates: vec![ca.certificate(&["shop.apps.test"])],
        http01: [("tok-123".to_string(), "tok-123.thumbprint".to_string())].into(),
        ..TlsTable::default()
    };
    let (_router, http, _) = tls_router(RouteTable { routes: vec![secure] }, &tls).await;
    for host in ["shop.apps.test", "not-routed.example.com"] {
        let response = get(http, host, "/.well-known/acme-challenge/tok-123").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "tok-123.thumbprint");
    }
    // A token the router was not given is the app's business (after the redirect).
    let response = get(http, "not-routed.example.com", "/.well-known/acme-challenge/other").await;
    assert_eq!(response.status(), 404);
}

/// A TLS connection to `addr` naming `host`, offering `alpn`, trusting `root`, or with none
/// any certificate, as an ACME server's validation does (it checks the certificate itself).
async fn handshake(
    addr: SocketAddr,
    host: &str,
    alpn: &[u8],
    root: Option<CertificateDer<'static>>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(root) = &root {
        roots.add(root.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if root.is_none() {
        config.dangerous().set_certificate_verifier(Arc::new(AnyCertificate(provider)));
    }
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector.connect(ServerName::try_from(host.to_string()).unwrap(), tcp).await
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    // webpki refuses to parse a certificate with the critical acmeIdentifier extension, so
    // the signature goes unchecked: this client only looks at what it is shown.
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test]
async fn tls_alpn01_handshakes_get_the_challenge_certificate_and_nothing_else() {
    let app = backend("alpha").await;
    let ca = TestCa::new();
    let served = ca.certificate(&["shop.apps.test"]);
    // What an ACME client makes: self-signed, carrying the key authorization's digest.
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["shop.apps.test".to_string()]).unwrap();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&[7u8; 32])];
    let challenge = params.self_signed(&key).unwrap();
    let alpn01 = CertificatePem {
        hosts: vec!["shop.apps.test".into()],
        chain: challenge.pem(),
        key: key.serialize_pem(),
    };
    let tls = TlsTable { certificates: vec![served], alpn01: vec![alpn01], ..TlsTable::default() };
    let table = RouteTable { routes: vec![shop_route(&["shop.apps.test"], app.addr)] };
    let (_router, _, https) = tls_router(table, &tls).await;

    let validation = handshake(https, "shop.apps.test", b"acme-tls/1", None);
    let stream = validation.await.expect("the validation handshake succeeds");
    let (_, session) = stream.get_ref();
    assert_eq!(session.alpn_protocol(), Some(&b"acme-tls/1"[..]));
    let peer = session.peer_certificates().unwrap();
    assert_eq!(peer[0].as_ref(), challenge.der().as_ref());

    // A browser never sees the challenge certificate...
    let client = https_client(&ca, &["shop.apps.test"], https);
    let port = https.port();
    let response = client.get(format!("https://shop.apps.test:{port}/name")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "alpha");
    // ...and a validation for a host with no challenge gets no certificate at all.
    assert!(handshake(https, "other.apps.test", b"acme-tls/1", None).await.is_err());
}

#[tokio::test]
async fn certificates_swap_under_load_without_a_failed_request() {
    let app = backend("alpha").await;
    let ca = TestCa::new();
    let (first, second) =
        (ca.certificate(&["shop.apps.test"]), ca.certificate(&["shop.apps.test"]));
    let tls = |cert: &CertificatePem| TlsTable {
        certificates: vec![cert.clone()],
        ..TlsTable::default()
    };
    let table = RouteTable { routes: vec![shop_route(&["shop.apps.test"], app.addr)] };
    let (router, _, https) = tls_router(table, &tls(&first)).await;
    let client = https_client(&ca, &["shop.apps.test"], https);
    let url = format!("https://shop.apps.test:{}/name", https.port());

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
        let (ok, failed) = (ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for round in 0..20 {
        let next = if round % 2 == 0 { &second } else { &first };
        assert!(router.set_tls(&tls(next)).is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 20);
    // The last swap put `first` back: a new connection gets it.
    let fresh = https_client(&ca, &["shop.apps.test"], https);
    assert_eq!(peer_der(&fresh.get(&url).send().await.unwrap()), der_of(&first));
}

#[tokio::test]
async fn websockets_are_tunnelled_over_tls() {
    let app = backend("alpha").await;
    let ca = TestCa::new();
    let tls =
        TlsTable { certificates: vec![ca.certificate(&["shop.apps.test"])], ..TlsTable::default() };
    let table = RouteTable { routes: vec![shop_route(&["shop.apps.test"], app.addr)] };
    let (_router, _, https) = tls_router(table, &tls).await;
    let root = CertificateDer::from(ca.issuer.der().to_vec());
    let mut stream = handshake(https, "shop.apps.test", b"http/1.1", Some(root)).await.unwrap();
    let request = "GET /ws HTTP/1.1\r\nHost: shop.apps.test\r\nConnection: Upgrade\r\n\
                   Upgrade: websocket\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    for payload in [&b"hello"[..], &[0u8, 255, 10, 13][..]] {
        stream.write_all(payload).await.unwrap();
        let mut echoed = vec![0u8; payload.len()];
        stream.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, payload);
    }
}

#[tokio::test]
async fn a_certificate_that_does_not_fit_its_key_is_left_out_and_named() {
    let app = backend("alpha").await;
    let ca = TestCa::new();
    let good = ca.certificate(&["shop.apps.test"]);
    let mut bad = ca.certificate(&["blog.apps.test"]);
    bad.key = ca.certificate(&["blog.apps.test"]).key;
    let garbled = CertificatePem {
        hosts: vec!["x.apps.test".into()],
        chain: "not a certificate".into(),
        key: good.key.clone(),
    };
    let table = RouteTable { routes: vec![shop_route(&["shop.apps.test"], app.addr)] };
    let (router, _, https) = tls_router(table, &TlsTable::default()).await;
    let errors =
        router.set_tls(&TlsTable { certificates: vec![bad, good, garbled], ..TlsTable::default() });
    let said: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[0].contains("blog.apps.test") && said[0].contains("does not fit"), "{said:?}");
    assert!(said[1].contains("x.apps.test") && said[1].contains("no certificate"), "{said:?}");
    assert!(!format!("{:?}", TlsTable::default()).contains("PRIVATE"));
    let client = https_client(&ca, &["shop.apps.test"], https);
    let response = client.get(format!("https://shop.apps.test:{}/name", https.port())).send();
    assert_eq!(response.await.unwrap().text().await.unwrap(), "alpha");
}

#[tokio::test]
async fn websockets_are_tunnelled_inside_http2_beside_other_streams() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let app = backend("alpha").await;
    let ca = TestCa::new();
    let tls =
        TlsTable { certificates: vec![ca.certificate(&["shop.apps.test"])], ..TlsTable::default() };
    let table = RouteTable { routes: vec![shop_route(&["shop.apps.test"], app.addr)] };
    let (_router, _, https) = tls_router(table, &tls).await;
    let root = CertificateDer::from(ca.issuer.der().to_vec());
    let stream = handshake(https, "shop.apps.test", b"h2", Some(root)).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);

    // RFC 8441: an extended CONNECT with :protocol websocket.
    let mut request = hyper::Request::builder()
        .method(hyper::Method::CONNECT)
        .uri("https://shop.apps.test/ws")
        .header("sec-websocket-version", "13")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    request.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.headers());
    assert!(!response.headers().contains_key("sec-websocket-accept"));
    let mut tunnel = TokioIo::new(hyper::upgrade::on(response).await.unwrap());

    // Another stream of the same connection is served meanwhile.
    let plain = hyper::Request::builder()
        .uri("https://shop.apps.test/name")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let answer = sender.send_request(plain).await.unwrap();
    assert_eq!(answer.into_body().collect().await.unwrap().to_bytes(), "alpha");

    for payload in [&b"hello over h2"[..], &[0u8, 255, 10, 13][..]] {
        tunnel.write_all(payload).await.unwrap();
        let mut echoed = vec![0u8; payload.len()];
        tunnel.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, payload);
    }
}

#[tokio::test]
async fn a_trusted_proxy_that_terminated_tls_is_not_redirected() {
    let app = backend("alpha").await;
    let ca = TestCa::new();
    let mut secure = shop_route(&["shop.apps.test"], app.addr);
    secure.https_redirect = true;
    let config =
        RouterConfig { trusted_proxies: "127.0.0.1".parse().unwrap(), ..Default::default() };
    let router = Router::new(config);
    let _ = router.set_table(&RouteTable { routes: vec![secure] });
    let tls =
        TlsTable { certificates: vec![ca.certificate(&["shop.apps.test"])], ..TlsTable::default() };
    assert!(router.set_tls(&tls).is_empty());
    let (plain, secure) = (
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let http = plain.local_addr().unwrap();
    let serving = router.clone();
    tokio::spawn(async move { serving.serve(plain, std::future::pending()).await });
    tokio::spawn(async move { router.serve_tls(secure, std::future::pending()).await });
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let send = |proto: &'static str| {
        client
            .get(format!("http://{http}/name"))
            .header("host", "shop.apps.test")
            .header("x-forwarded-proto", proto)
            .send()
    };
    // The proxy says its client used HTTPS: served, or it would redirect forever.
    assert_eq!(send("https").await.unwrap().status(), 200);
    assert_eq!(send("http").await.unwrap().status(), 308);
}

#[tokio::test]
async fn idle_http2_connections_are_closed() {
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let app = backend("alpha").await;
    let ca = TestCa::new();
    let config =
        RouterConfig { idle_timeout: std::time::Duration::from_millis(600), ..Default::default() };
    let router = Router::new(config);
    let _ =
        router.set_table(&RouteTable { routes: vec![shop_route(&["shop.apps.test"], app.addr)] });
    let tls =
        TlsTable { certificates: vec![ca.certificate(&["shop.apps.test"])], ..TlsTable::default() };
    assert!(router.set_tls(&tls).is_empty());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = listener.local_addr().unwrap();
    tokio::spawn(async move { router.serve_tls(listener, std::future::pending()).await });

    let root = CertificateDer::from(ca.issuer.der().to_vec());
    let stream = handshake(https, "shop.apps.test", b"h2", Some(root)).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let closed = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .uri("https://shop.apps.test/name")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
    // Nothing more asked: the router says goodbye after the idle timeout.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), closed).await;
    assert!(ended.is_ok(), "the idle connection stayed open");
}
