//! The scrape answer (BEP 48): per torrent, how many seed, leech and have finished.

use super::{check_failure, int_u32, put_bytes, put_key_int, TrackerError};
use crate::proto::bencode::{self, as_dict, DictExt, Value};

/// The counts of one torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeders now.
    pub complete: u32,
    /// Leechers now.
    pub incomplete: u32,
    /// Downloads finished (`completed` events) since the tracker started.
    pub downloaded: u32,
}

/// The answer to a scrape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeResponse {
    /// Each torrent with its counts. Encoding sorts them by info-hash, as bencode requires.
    pub files: Vec<([u8; 20], ScrapeStats)>,
}

impl ScrapeResponse {
    /// The bencoded body: `{files: {<hash>: {complete, downloaded, incomplete}}}`.
    pub fn encode(&self) -> Vec<u8> {
        let mut files: Vec<&([u8; 20], ScrapeStats)> = self.files.iter().collect();
        files.sort_unstable_by_key(|(hash, _)| *hash);
        files.dedup_by_key(|(hash, _)| *hash);
        let mut out = Vec::with_capacity(16 + files.len() * 80);
        out.extend_from_slice(b"d");
        put_bytes(&mut out, b"files");
        out.push(b'd');
        for (hash, s) in files {
            put_bytes(&mut out, hash);
            out.push(b'd');
            put_key_int(&mut out, b"complete", s.complete.into());
            put_key_int(&mut out, b"downloaded", s.downloaded.into());
            put_key_int(&mut out, b"incomplete", s.incomplete.into());
            out.push(b'e');
        }
        out.extend_from_slice(b"ee");
        out
    }

    /// Parse a scrape answer; `failure reason` becomes [`TrackerError::Failure`]. Entries whose
    /// key is not 20 bytes are skipped; missing counts are 0.
    pub fn parse(body: &[u8]) -> Result<ScrapeResponse, TrackerError> {
        let value = bencode::decode(body)?;
        let d = as_dict(&value, "response")?;
        check_failure(d)?;
        let mut files = Vec::new();
        for (hash, entry) in d.opt_dict("files")?.into_iter().flatten() {
            let (Ok(hash), Value::Dict(s)) = (<[u8; 20]>::try_from(hash.as_ref()), entry) else {
                continue;
            };
            let stats = ScrapeStats {
                complete: int_u32(s, "complete")?.unwrap_or(0),
                incomplete: int_u32(s, "incomplete")?.unwrap_or(0),
                downloaded: int_u32(s, "downloaded")?.unwrap_or(0),
            };
            files.push((hash, stats));
        }
        Ok(ScrapeResponse { files })
    }

    /// The counts of one torrent, if the answer has them.
    pub fn get(&self, info_hash: &[u8; 20]) -> Option<ScrapeStats> {
        self.files
            .iter()
            .find(|(h, _)| h == info_hash)
            .map(|(_, s)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bencode::{key, Dict};
    use std::borrow::Cow;

    fn stats(c: u32, i: u32, d: u32) -> ScrapeStats {
        ScrapeStats {
            complete: c,
            incomplete: i,
            downloaded: d,
        }
    }

    #[test]
    fn encoding_matches_the_reference_and_round_trips() {
        let r = ScrapeResponse {
            files: vec![([9; 20], stats(1, 2, 3)), ([0; 20], stats(0, 0, u32::MAX))],
        };
        let mut files = Dict::new();
        for (h, s) in &r.files {
            let mut d = Dict::new();
            d.insert(key("complete"), Value::Integer(s.complete.into()));
            d.insert(key("incomplete"), Value::Integer(s.incomplete.into()));
            d.insert(key("downloaded"), Value::Integer(s.downloaded.into()));
            files.insert(Cow::Owned(h.to_vec()), Value::Dict(d));
        }
        let mut top = Dict::new();
        top.insert(key("files"), Value::Dict(files));
        let body = r.encode();
        assert_eq!(body, bencode::encode(&Value::Dict(top)));
        let mut back = ScrapeResponse::parse(&body).unwrap();
        back.files.sort_by_key(|(h, _)| std::cmp::Reverse(*h));
        assert_eq!(back, r);
        assert_eq!(back.get(&[9; 20]), Some(stats(1, 2, 3)));
        assert_eq!(back.get(&[8; 20]), None);
        assert_eq!(ScrapeResponse::default().encode(), b"d5:filesdee");
    }

    #[test]
    fn odd_answers() {
        let f = ScrapeResponse::parse(b"d14:failure reason4:nopee");
        assert_eq!(f, Err(TrackerError::Failure("nope".into())));
        assert_eq!(
            ScrapeResponse::parse(b"de").unwrap(),
            ScrapeResponse::default()
        );
        let body = b"d5:filesd3:000d8:completei1ee20:aaaaaaaaaaaaaaaaaaaad8:completei5eeee";
        let r = ScrapeResponse::parse(body).unwrap();
        assert_eq!(r.files, vec![(*b"aaaaaaaaaaaaaaaaaaaa", stats(5, 0, 0))]);
        assert!(ScrapeResponse::parse(b"d5:filesi1ee").is_err());
        assert!(
            ScrapeResponse::parse(b"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei-1eeee").is_err()
        );
        let body = ScrapeResponse {
            files: vec![([1; 20], stats(1, 1, 1))],
        }
        .encode();
        // Every strict prefix is an unfinished dictionary: an error, never a partial answer.
        for cut in 0..body.len() {
            assert!(ScrapeResponse::parse(&body[..cut]).is_err(), "{cut}");
        }
    }
}
