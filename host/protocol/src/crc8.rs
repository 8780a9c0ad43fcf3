//! The CRC-8 (polynomial 0x07, initial value 0, no reflection) that PlainBuffer uses for its
//! cell and row checksums.

const TABLE: [u8; 256] = build_table();

const fn build_table() -> [u8; 256] {
    let mut table = [0u8; 256];
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
        table[i] = crc;
        i += 1;
    }
    table
}

/// Folds one byte into a running checksum.
pub fn crc_u8(crc: u8, byte: u8) -> u8 {
    TABLE[(crc ^ byte) as usize]
}

/// Folds bytes into a running checksum.
pub fn crc_bytes(crc: u8, bytes: &[u8]) -> u8 {
    bytes.iter().fold(crc, |c, &b| crc_u8(c, b))
}

/// Folds a 32-bit integer, little-endian byte order, into a running checksum.
pub fn crc_u32(crc: u8, value: u32) -> u8 {
    crc_bytes(crc, &value.to_le_bytes())
}

/// Folds a 64-bit integer, little-endian byte order, into a running checksum.
pub fn crc_u64(crc: u8, value: u64) -> u8 {
    crc_bytes(crc, &value.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_crc8_check_value() {
        // CRC-8/SMBUS (poly 0x07, init 0) of "123456789" is 0xF4.
        assert_eq!(crc_bytes(0, b"123456789"), 0xF4);
    }

    #[test]
    fn integers_fold_little_endian() {
        assert_eq!(crc_u32(0, 0x0403_0201), crc_bytes(0, &[1, 2, 3, 4]));
        assert_eq!(crc_u64(7, 1), crc_bytes(7, &[1, 0, 0, 0, 0, 0, 0, 0]));
    }
}
