//! TFRecord framing, the container of TensorBoard event files: each record is
//! `u64 length (LE) | u32 masked CRC32C of those 8 bytes | payload | u32 masked CRC32C of
//! the payload` (TensorFlow's `record_writer.cc`).

use std::io::Write;

/// TensorFlow's CRC mask: rotate right by 15 and add a constant, so that a CRC stored
/// inside CRC'd data does not cancel out.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Writes one record holding `payload`.
pub fn write_record(out: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    let len = (payload.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc32c(&len).to_le_bytes())?;
    out.write_all(payload)?;
    out.write_all(&masked_crc32c(payload).to_le_bytes())
}

/// The payloads of the whole records in `bytes`, and how many bytes they span. Reading
/// stops at the first record that is cut short (a writer stopped mid-record) or whose CRC
/// does not match; everything before it is returned.
pub fn read_records(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((payload, next)) = record_at(bytes, at) {
        out.push(payload);
        at = next;
    }
    (out, at)
}

/// The record starting at `at`: its payload and where the next one starts.
fn record_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at + 12)?;
    let (len, len_crc) = header.split_at(8);
    if masked_crc32c(len) != u32::from_le_bytes(len_crc.try_into().ok()?) {
        return None;
    }
    let n = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
    let start = at + 12;
    let end = start.checked_add(n)?;
    let payload = bytes.get(start..end)?;
    let crc = bytes.get(end..end + 4)?;
    if masked_crc32c(payload) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    Some((payload, end + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_value() {
        // CRC-32C of "123456789" is 0xE3069283 (RFC 3720 / the CRC catalogue's check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let masked = 0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), masked);
    }

    #[test]
    fn records_round_trip_and_a_cut_or_corrupt_tail_is_dropped() {
        let mut buf = Vec::new();
        for p in [&b"first"[..], b"", b"third record"] {
            write_record(&mut buf, p).unwrap();
        }
        let (recs, used) = read_records(&buf);
        assert_eq!(recs, vec![&b"first"[..], b"", b"third record"]);
        assert_eq!(used, buf.len());
        // cut inside the last record: the first two remain
        let cut = &buf[..buf.len() - 3];
        let (recs, used) = read_records(cut);
        assert_eq!(recs.len(), 2);
        assert_eq!(used, 12 + 5 + 4 + 12 + 4);
        // a flipped payload byte in the first record: nothing is trusted from there on
        let mut bad = buf.clone();
        bad[13] ^= 1;
        assert_eq!(read_records(&bad).0.len(), 0);
    }
}
