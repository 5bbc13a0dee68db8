//! The floor under any proxy, for `bench/router.sh`: a TCP relay that reads HTTP nowhere.
//! Each client connection gets its own backend connection and bytes are copied both ways
//! as they come, one single-threaded runtime per core (as the router runs), so a request
//! through it costs the same socket reads and writes as through a proxy and nothing else.
//! What it reaches against the backend direct is the most any proxy can reach here.
//!
//!   copy_floor LISTEN_ADDR BACKEND_ADDR

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, backend] = args.as_slice() else {
        return Err("usage: copy_floor LISTEN_ADDR BACKEND_ADDR".into());
    };
    let backend: SocketAddr = backend.parse()?;
    let listener = std::net::TcpListener::bind(listen.as_str())?;
    listener.set_nonblocking(true)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let listener = listener.try_clone()?;
            Ok(std::thread::spawn(move || relay(listener, backend)))
        })
        .collect::<Result<_, std::io::Error>>()?;
    for thread in threads {
        thread.join().map_err(|_| "a relay thread panicked")??;
    }
    Ok(())
}

/// Accepts on this thread's runtime and copies each connection to and from `backend`.
fn relay(listener: std::net::TcpListener, backend: SocketAddr) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            let (mut client, _) = listener.accept().await?;
            tokio::spawn(async move {
                let Ok(mut upstream) = TcpStream::connect(backend).await else { return };
                let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    })
}
