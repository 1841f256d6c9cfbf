//! Pictures for tests and benchmarks, written by hand (no image library needed).

/// A 24-bit BMP of `edge` × `edge` pixels (a gradient): a picture the origin takes.
pub fn bmp(edge: u32, shade: u8) -> Vec<u8> {
    let row = (edge * 3).div_ceil(4) * 4;
    let pixels = row * edge;
    let mut out = Vec::with_capacity(54 + pixels as usize);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&(54 + pixels).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(edge as i32).to_le_bytes());
    out.extend_from_slice(&(edge as i32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&pixels.to_le_bytes());
    out.extend_from_slice(&[0; 16]);
    for y in 0..edge {
        for x in 0..edge {
            out.extend_from_slice(&[(x % 256) as u8, (y % 256) as u8, shade]);
        }
        out.resize(out.len() + (row - edge * 3) as usize, 0);
    }
    out
}
