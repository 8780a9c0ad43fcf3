//! Channel tokens in the form the official SDKs decode: `base64(Token{version 2,
//! TokenContentV2})`. The SDKs look into them to tell stream channels (a non-empty iterator)
//! from base-data ones and back off only on the former (Go `tunnel/util.go` `streamToken`,
//! Java `tunnel/pipeline/Utils.java` `isStreamToken`; a token Java cannot read makes it poll an
//! idle stream channel without pause). The iterator is a log position, the primary key where a
//! shard goes on, and the total counts the records delivered up to the token, which
//! DescribeTunnel reports as the rows a channel synchronized.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ots_protocol::pb::tunnel::{FINISH_TAG, Token, TokenContentV2};
use prost::Message;

use super::state::Source;
use crate::error::ApiError;

/// The token version the SDKs read as [`TokenContentV2`].
const VERSION: i64 = 2;

/// Where a channel reads on from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A partition's log after this sequence number.
    Stream {
        /// The last sequence number consumed.
        after: u64,
    },
    /// A base-data shard from this PlainBuffer primary key on.
    Base {
        /// The first key still to read.
        start: Vec<u8>,
    },
}

/// A decoded token: a position and the records delivered before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelToken {
    /// Where reading goes on.
    pub position: Position,
    /// Records delivered on the channel before this position.
    pub delivered: i64,
}

impl ChannelToken {
    /// The token's text.
    pub fn encode(&self) -> String {
        let content = match &self.position {
            Position::Stream { after } => TokenContentV2 {
                iterator: Some(after.to_string()),
                total_count: Some(self.delivered),
                ..Default::default()
            },
            Position::Base { start } => TokenContentV2 {
                primary_key: Some(start.clone()),
                total_count: Some(self.delivered),
                ..Default::default()
            },
        };
        let token = Token {
            version: VERSION,
            content: content.encode_to_vec(),
        };
        BASE64.encode(token.encode_to_vec())
    }

    /// Reads a token this server gave out (not [`FINISH_TAG`]).
    pub fn decode(text: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::invalid(format!("Invalid token: {text:?}."));
        let bytes = BASE64.decode(text).map_err(|_| invalid())?;
        let token = Token::decode(bytes.as_slice()).map_err(|_| invalid())?;
        if token.version != VERSION {
            return Err(invalid());
        }
        let content = TokenContentV2::decode(token.content.as_slice()).map_err(|_| invalid())?;
        let delivered = content.total_count.unwrap_or(0);
        let position = match (
            content.iterator.filter(|i| !i.is_empty()),
            content.primary_key,
        ) {
            (Some(iterator), None) => Position::Stream {
                after: iterator.parse().map_err(|_| invalid())?,
            },
            (None, Some(start)) => Position::Base { start },
            _ => return Err(invalid()),
        };
        Ok(Self {
            position,
            delivered,
        })
    }

    /// Records delivered up to a checkpointed token: its total, or none for the start.
    pub fn delivered_by(text: &str) -> Result<Option<i64>, ApiError> {
        if text == FINISH_TAG {
            return Ok(None);
        }
        Self::decode(text).map(|t| Some(t.delivered))
    }
}

/// A checkpoint stored by an earlier version of this server (a decimal log position for a
/// stream channel; empty or a hex primary key for a base-data one), as a token of today's
/// form; `None` when it needs no upgrade.
pub fn upgrade_legacy(checkpoint: &str, source: &Source) -> Option<String> {
    if checkpoint == FINISH_TAG || ChannelToken::decode(checkpoint).is_ok() {
        return None;
    }
    let position = match source {
        Source::Stream { .. } => Position::Stream {
            after: checkpoint.parse().ok()?,
        },
        Source::Base { begin, .. } if checkpoint.is_empty() => Position::Base {
            start: begin.clone(),
        },
        Source::Base { .. } => Position::Base {
            start: hex_decode(checkpoint)?,
        },
    };
    Some(
        ChannelToken {
            position,
            delivered: 0,
        }
        .encode(),
    )
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_roundtrip_and_stream_tokens_carry_an_iterator() {
        for position in [
            Position::Stream { after: 42 },
            Position::Base {
                start: vec![0x75, 0, 0, 0, 1],
            },
        ] {
            let token = ChannelToken {
                position: position.clone(),
                delivered: 7,
            };
            let text = token.encode();
            assert_eq!(ChannelToken::decode(&text).unwrap(), token);
            // What an SDK sees: base64 of Token{version 2, content: TokenContentV2}.
            let raw = Token::decode(BASE64.decode(&text).unwrap().as_slice()).unwrap();
            assert_eq!(raw.version, 2);
            let content = TokenContentV2::decode(raw.content.as_slice()).unwrap();
            assert_eq!(
                content.iterator.is_some_and(|i| !i.is_empty()),
                matches!(position, Position::Stream { .. }),
                "only stream tokens have an iterator"
            );
        }
        assert!(ChannelToken::decode("12").is_err());
        assert_eq!(ChannelToken::delivered_by(FINISH_TAG).unwrap(), None);
    }

    #[test]
    fn checkpoints_of_an_earlier_server_are_upgraded() {
        let stream = Source::Stream {
            partition: 0,
            parents: vec![],
        };
        let upgraded = upgrade_legacy("12", &stream).unwrap();
        assert_eq!(
            ChannelToken::decode(&upgraded).unwrap().position,
            Position::Stream { after: 12 }
        );
        let base = Source::Base {
            begin: vec![1],
            end: vec![2],
        };
        let from_start = upgrade_legacy("", &base).unwrap();
        assert_eq!(
            ChannelToken::decode(&from_start).unwrap().position,
            Position::Base { start: vec![1] }
        );
        let from_key = upgrade_legacy("0a0b", &base).unwrap();
        assert_eq!(
            ChannelToken::decode(&from_key).unwrap().position,
            Position::Base {
                start: vec![10, 11]
            }
        );
        assert_eq!(
            upgrade_legacy(&from_key, &base),
            None,
            "today's tokens stay"
        );
        assert_eq!(upgrade_legacy(FINISH_TAG, &base), None);
    }
}
