//! URL query strings as Go's `url.ParseQuery` reads them: `+` is a space, `%XX` a byte,
//! the first value of a key wins in `get`.

/// Decoded `key=value` pairs, in order.
pub fn parse(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((unescape(key)?, unescape(value)?))
        })
        .collect()
}

/// The first value of `key`, or `""` (Go's `Values.Get`).
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// Form decoding; `None` for a malformed escape (Go drops such a pair).
pub fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        let pairs = parse("msg=hello+world&code=%32%30%31&msg=second&flag&bad=%zz");
        assert_eq!(get(&pairs, "msg"), "hello world");
        assert_eq!(get(&pairs, "code"), "201");
        assert_eq!(get(&pairs, "flag"), "");
        assert_eq!(get(&pairs, "bad"), "");
        assert_eq!(get(&pairs, "missing"), "");
        assert_eq!(pairs.len(), 4);
        assert_eq!(unescape("a%2Fb%3Fc%3Dd"), Some("a/b?c=d".into()));
        assert_eq!(unescape("%4"), None);
    }
}
