//! The relays on loopback: real sockets, an echo server behind each, the emulated delay seen
//! from outside.

use std::time::{Duration, Instant};

use linkem::{LinkConfig, TcpRelay, UdpRelay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

#[tokio::test]
async fn udp_round_trips_take_the_emulated_rtt_and_losses_are_seeded() {
    let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 2048];
        while let Ok((len, from)) = echo.recv_from(&mut buffer).await {
            let _ = echo.send_to(&buffer[..len], from).await;
        }
    });
    let relay = UdpRelay::bind(
        "127.0.0.1:0".parse().unwrap(),
        target,
        LinkConfig::half_rtt(40.0),
        LinkConfig::half_rtt(40.0),
        7,
    )
    .await
    .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(relay.addr()).await.unwrap();
    let mut buffer = [0u8; 2048];
    for round in 0..5u8 {
        let sent = Instant::now();
        client.send(&[round; 100]).await.unwrap();
        let len = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buffer[..len], &[round; 100]);
        let rtt = sent.elapsed();
        assert!(rtt >= Duration::from_millis(40), "{rtt:?}");
        assert!(rtt < Duration::from_secs(2), "{rtt:?}");
    }

    // All lost one way: nothing comes back, and the relay counts it.
    let lossy = UdpRelay::bind(
        "127.0.0.1:0".parse().unwrap(),
        target,
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
        LinkConfig::default(),
        7,
    )
    .await
    .unwrap();
    client.connect(lossy.addr()).await.unwrap();
    client.send(&[9; 10]).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buffer))
            .await
            .is_err()
    );
    assert_eq!(
        lossy
            .stats()
            .lost
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn tcp_streams_keep_their_bytes_and_order_and_take_the_emulated_rtt() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = server.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = server.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                while let Ok(len) = stream.read(&mut buffer).await {
                    if len == 0 || stream.write_all(&buffer[..len]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let jittery = LinkConfig {
        delay_ms: 15.0,
        jitter_ms: 10.0,
        ..LinkConfig::default()
    };
    let relay = TcpRelay::bind("127.0.0.1:0".parse().unwrap(), target, jittery, jittery, 3)
        .await
        .unwrap();
    let mut stream = TcpStream::connect(relay.addr()).await.unwrap();
    let message: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sent = Instant::now();
    let (mut read, mut write) = stream.split();
    let writing = async {
        for piece in message.chunks(7_000) {
            write.write_all(piece).await.unwrap();
        }
    };
    let reading = async {
        let mut back = vec![0u8; message.len()];
        read.read_exact(&mut back).await.unwrap();
        back
    };
    let ((), back) = tokio::join!(writing, reading);
    assert_eq!(back, message, "every byte, in order, through jitter");
    assert!(sent.elapsed() >= Duration::from_millis(30));
}

#[tokio::test]
async fn a_cut_relay_goes_silent_both_ways() {
    let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 2048];
        while let Ok((len, from)) = echo.recv_from(&mut buffer).await {
            let _ = echo.send_to(&buffer[..len], from).await;
        }
    });
    let relay = UdpRelay::bind(
        "127.0.0.1:0".parse().unwrap(),
        target,
        LinkConfig::default(),
        LinkConfig::default(),
        3,
    )
    .await
    .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(relay.addr()).await.unwrap();
    let mut buffer = [0u8; 64];
    client.send(b"hello").await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buffer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buffer[..len], b"hello");
    relay.cut();
    client.send(b"again").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buffer))
            .await
            .is_err(),
        "a cut relay still answered"
    );
}
