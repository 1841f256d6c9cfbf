//! Playing PCM to the sound card (cargo feature `sound`; on Linux it needs the ALSA headers,
//! `libasound2-dev`). [`SoundSink`] is a [`PcmSink`]: the decoder writes into a bounded ring
//! of about half a second that the device's callback drains, so decoding runs at the pace of
//! the speakers and a pause in the app stops both. The device runs on its own thread (cpal
//! streams may not move between threads); the ring converts the track's rate and channels to
//! the device's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::decode::{PcmSink, map_channels, resample_linear};

/// Seconds of audio the ring holds.
const RING_SECONDS: f64 = 0.5;

struct Shared {
    ring: Mutex<VecDeque<f32>>,
    space: Condvar,
    capacity: usize,
    stop: AtomicBool,
}

/// The sound card as a PCM sink.
pub struct SoundSink {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
    device_rate: u32,
    device_channels: u16,
    input: Option<(u32, u16)>,
    resample_state: f64,
}

impl std::fmt::Debug for SoundSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoundSink")
            .field("device_rate", &self.device_rate)
            .field("device_channels", &self.device_channels)
            .finish_non_exhaustive()
    }
}

fn io_error(message: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("sound card: {message}"))
}

impl SoundSink {
    /// Opens the default output device. Fails with a clear error when there is none or it
    /// refuses a stream.
    pub fn open() -> std::io::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<(u32, u16)>>();
        // The ring's capacity depends on the device's rate: the thread makes it.
        let shared_slot: Arc<Mutex<Option<Arc<Shared>>>> = Arc::new(Mutex::new(None));
        let slot = shared_slot.clone();
        let thread = std::thread::Builder::new()
            .name("sound".into())
            .spawn(move || {
                let host = cpal::default_host();
                let Some(device) = host.default_output_device() else {
                    let _ = ready_tx.send(Err(io_error("no output device")));
                    return;
                };
                let config = match device.default_output_config() {
                    Ok(config) => config,
                    Err(error) => {
                        let _ = ready_tx.send(Err(io_error(error)));
                        return;
                    }
                };
                let (rate, channels) = (config.sample_rate(), config.channels());
                let shared = Arc::new(Shared {
                    ring: Mutex::new(VecDeque::new()),
                    space: Condvar::new(),
                    capacity: (f64::from(rate) * f64::from(channels) * RING_SECONDS) as usize,
                    stop: AtomicBool::new(false),
                });
                *slot.lock().unwrap_or_else(|poison| poison.into_inner()) = Some(shared.clone());
                let feed = shared.clone();
                let stream = device.build_output_stream::<f32, _, _>(
                    cpal::StreamConfig {
                        channels,
                        sample_rate: rate,
                        buffer_size: cpal::BufferSize::Default,
                    },
                    move |out: &mut [f32], _| {
                        let mut ring = feed
                            .ring
                            .lock()
                            .unwrap_or_else(|poison| poison.into_inner());
                        for sample in out.iter_mut() {
                            // An empty ring plays silence (an underrun), never garbage.
                            *sample = ring.pop_front().unwrap_or(0.0);
                        }
                        feed.space.notify_all();
                    },
                    |error| tracing::warn!(%error, "sound card stream error"),
                    None,
                );
                let stream = match stream.and_then(|stream| stream.play().map(|()| stream)) {
                    Ok(stream) => stream,
                    Err(error) => {
                        let _ = ready_tx.send(Err(io_error(error)));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((rate, channels)));
                while !shared.stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(Duration::from_millis(100));
                }
                drop(stream);
            })?;
        let (device_rate, device_channels) = ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| io_error("the device did not answer"))??;
        let shared = shared_slot
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
            .ok_or_else(|| io_error("the device thread made no buffer"))?;
        Ok(Self {
            shared,
            thread: Some(thread),
            device_rate,
            device_channels,
            input: None,
            resample_state: 0.0,
        })
    }

    /// Blocks until the ring has room for `samples`, then queues them.
    fn queue(&self, samples: &[f32]) {
        let mut at = 0;
        while at < samples.len() {
            let mut ring = self
                .shared
                .ring
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            while ring.len() >= self.shared.capacity {
                let (next, _) = self
                    .shared
                    .space
                    .wait_timeout(ring, Duration::from_millis(200))
                    .unwrap_or_else(|poison| poison.into_inner());
                ring = next;
            }
            let room = self.shared.capacity - ring.len();
            let take = room.min(samples.len() - at);
            ring.extend(&samples[at..at + take]);
            at += take;
        }
    }
}

impl PcmSink for SoundSink {
    fn format(&mut self, sample_rate: u32, channels: u16) -> std::io::Result<()> {
        if sample_rate == 0 || channels == 0 {
            return Err(io_error("a stream with no rate or no channels"));
        }
        self.input = Some((sample_rate, channels));
        Ok(())
    }

    fn samples(&mut self, samples: &[i16]) -> std::io::Result<()> {
        let (rate, channels) = self
            .input
            .ok_or_else(|| io_error("samples before format"))?;
        let floats: Vec<f32> = samples
            .iter()
            .map(|&sample| f32::from(sample) / 32768.0)
            .collect();
        let mapped = map_channels(&floats, channels, self.device_channels);
        let out = if rate == self.device_rate {
            mapped
        } else {
            resample_linear(
                &mapped,
                self.device_channels,
                rate,
                self.device_rate,
                &mut self.resample_state,
            )
        };
        self.queue(&out);
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        // Let the ring play out (bounded: it holds half a second).
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let left = self
                .shared
                .ring
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .len();
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for SoundSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
