//! CRC-32 (IEEE 802.3, the zlib/PNG checksum), table-driven.

/// The reflected IEEE polynomial.
const POLY: u32 = 0xEDB8_8320;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        #[allow(clippy::cast_possible_truncation)]
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// A running CRC-32: feed it slices with [`update`](Self::update).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crc32(u32);

impl Crc32 {
    pub(crate) fn new() -> Self {
        Self(!0)
    }

    pub(crate) fn update(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 = TABLE[usize::from(self.0.to_le_bytes()[0] ^ b)] ^ (self.0 >> 8);
        }
        self
    }

    pub(crate) fn finish(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Crc32;

    #[test]
    fn known_vectors() {
        assert_eq!(Crc32::new().finish(), 0);
        assert_eq!(Crc32::new().update(b"123456789").finish(), 0xCBF4_3926);
        assert_eq!(
            Crc32::new()
                .update(b"The quick brown fox ")
                .update(b"jumps over the lazy dog")
                .finish(),
            0x414F_A339
        );
    }
}
