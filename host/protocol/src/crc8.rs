//! The CRC-8 (polynomial 0x07, initial value 0, no reflection) that PlainBuffer uses for its
//! cell and row checksums.

/// `TABLES[k][x]`: the checksum of byte `x` followed by `k` zero bytes, from 0. The CRC is
/// linear, so eight bytes fold at once as eight independent lookups (slicing-by-8) instead of a
/// chain of eight dependent ones: every cell's timestamp is a 64-bit fold.
const TABLES: [[u8; 256]; 8] = build_tables();

const fn build_tables() -> [[u8; 256]; 8] {
    let mut tables = [[0u8; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            // One more zero byte: fold 0 into the checksum of the shorter run.
            tables[k][i] = tables[0][tables[k - 1][i] as usize];
            i += 1;
        }
        k += 1;
    }
    tables
}

/// Folds one byte into a running checksum.
pub fn crc_u8(crc: u8, byte: u8) -> u8 {
    TABLES[0][(crc ^ byte) as usize]
}

/// Folds eight bytes into a running checksum.
fn crc_8_bytes(crc: u8, bytes: [u8; 8]) -> u8 {
    TABLES[7][(crc ^ bytes[0]) as usize]
        ^ TABLES[6][bytes[1] as usize]
        ^ TABLES[5][bytes[2] as usize]
        ^ TABLES[4][bytes[3] as usize]
        ^ TABLES[3][bytes[4] as usize]
        ^ TABLES[2][bytes[5] as usize]
        ^ TABLES[1][bytes[6] as usize]
        ^ TABLES[0][bytes[7] as usize]
}

/// Folds bytes into a running checksum.
pub fn crc_bytes(crc: u8, bytes: &[u8]) -> u8 {
    let mut chunks = bytes.chunks_exact(8);
    let crc = chunks.by_ref().fold(crc, |c, chunk| {
        crc_8_bytes(c, chunk.try_into().expect("chunks of 8"))
    });
    chunks.remainder().iter().fold(crc, |c, &b| crc_u8(c, b))
}

/// Folds a 32-bit integer, little-endian byte order, into a running checksum.
pub fn crc_u32(crc: u8, value: u32) -> u8 {
    crc_bytes(crc, &value.to_le_bytes())
}

/// Folds a 64-bit integer, little-endian byte order, into a running checksum.
pub fn crc_u64(crc: u8, value: u64) -> u8 {
    crc_8_bytes(crc, value.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_crc8_check_value() {
        // CRC-8/SMBUS (poly 0x07, init 0) of "123456789" is 0xF4.
        assert_eq!(crc_bytes(0, b"123456789"), 0xF4);
    }

    /// The plain bit-by-bit CRC the tables stand for.
    fn bitwise(mut crc: u8, bytes: &[u8]) -> u8 {
        for &b in bytes {
            crc ^= b;
            for _ in 0..8 {
                crc = if crc & 0x80 != 0 {
                    (crc << 1) ^ 0x07
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn eight_bytes_at_once_fold_as_one_at_a_time() {
        // Every length from 0 to 40 (whole chunks and every remainder), from several starts.
        let bytes: Vec<u8> = (0..40u32).map(|i| (i * 151 + 7) as u8).collect();
        for start in [0u8, 1, 0x5A, 0xFF] {
            for len in 0..=bytes.len() {
                assert_eq!(
                    crc_bytes(start, &bytes[..len]),
                    bitwise(start, &bytes[..len]),
                    "start {start:#x}, {len} bytes"
                );
            }
        }
        for value in [0u64, 1, u64::MAX, 0x0123_4567_89AB_CDEF, 1_700_000_000_000] {
            assert_eq!(crc_u64(0x33, value), bitwise(0x33, &value.to_le_bytes()));
        }
    }

    #[test]
    fn integers_fold_little_endian() {
        assert_eq!(crc_u32(0, 0x0403_0201), crc_bytes(0, &[1, 2, 3, 4]));
        assert_eq!(crc_u64(7, 1), crc_bytes(7, &[1, 0, 0, 0, 0, 0, 0, 0]));
    }
}
