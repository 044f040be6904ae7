//! Tests of the streaming multipart `user` rewriter: any split, any field order, no user field.
#![allow(clippy::unwrap_used)]

use super::*;

const B: &str = "----b0undary";

fn part(name: &str, file: Option<&str>, body: &str) -> String {
    let disp = match file {
        Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/png"),
        None => format!("form-data; name=\"{name}\""),
    };
    format!("--{B}\r\nContent-Disposition: {disp}\r\n\r\n{body}\r\n")
}

fn form(parts: &[String]) -> String {
    format!("{}--{B}--\r\n", parts.concat())
}

fn run(input: &[u8], splits: &[usize]) -> Result<(String, Option<String>), Malformed> {
    let mut s = MultipartScoper::new(B, "acme");
    let mut out = Vec::new();
    let mut last = 0;
    for &p in splits.iter().chain(std::iter::once(&input.len())) {
        s.feed(&input[last..p], &mut out)?;
        last = p;
    }
    s.finish(&mut out)?;
    Ok((String::from_utf8(out).unwrap(), s.dify_user))
}

#[test]
fn rewrites_user_wherever_it_stands_and_however_split() {
    let file = part("file", Some("leaf.png"), "\u{89}PNG--not-a-boundary\r\n--almost");
    for parts in [
        vec![part("user", None, "bob"), file.clone()],
        vec![file.clone(), part("user", None, "bob")],
    ] {
        let input = form(&parts);
        let want: Vec<String> = parts
            .iter()
            .map(|p| p.replace("\r\n\r\nbob\r\n", "\r\n\r\nacme:bob\r\n"))
            .collect();
        let want = form(&want);
        for i in 0..input.len() {
            let (out, user) = run(input.as_bytes(), &[i]).unwrap();
            assert_eq!(out, want, "split at {i}");
            assert_eq!(user.as_deref(), Some("acme:bob"));
        }
        let every: Vec<usize> = (1..input.len()).collect();
        assert_eq!(run(input.as_bytes(), &every).unwrap().0, want, "byte by byte");
    }
}

#[test]
fn adds_the_tenants_default_user_when_none_is_sent() {
    let input = form(&[part("file", Some("a.png"), "xyz")]);
    let (out, user) = run(input.as_bytes(), &[3]).unwrap();
    assert_eq!(user.as_deref(), Some("acme:DEFAULT-USER"));
    assert_eq!(
        out,
        form(&[
            part("file", Some("a.png"), "xyz"),
            part("user", None, "acme:DEFAULT-USER")
        ])
    );
}

#[test]
fn a_file_named_user_is_not_the_user_field() {
    let input = form(&[part("user", Some("user.txt"), "data")]);
    let (out, user) = run(input.as_bytes(), &[]).unwrap();
    assert!(out.contains("\r\n\r\ndata\r\n"));
    assert_eq!(user.as_deref(), Some("acme:DEFAULT-USER"));
}

#[test]
fn refuses_what_it_cannot_read() {
    assert_eq!(run(b"--x\r\n", &[]), Err(Malformed), "no closing delimiter");
    let huge = format!("--{B}\r\n{}", "X: y\r\n".repeat(4000));
    assert_eq!(run(huge.as_bytes(), &[]), Err(Malformed), "endless headers");
}

#[test]
fn boundary_from_content_type() {
    assert_eq!(
        boundary("multipart/form-data; boundary=abc").as_deref(),
        Some("abc")
    );
    assert_eq!(
        boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").as_deref(),
        Some("a b")
    );
    assert_eq!(
        boundary("multipart/form-data; x=\"a;boundary=evil\"; boundary=ok").as_deref(),
        Some("ok")
    );
    for bad in [
        "application/json",
        "multipart/form-data",
        "multipart/form-data; boundary*=utf-8''abc",
        "multipart/form-data; boundary=a; boundary=b",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"bad\\\\char\"",
    ] {
        assert_eq!(boundary(bad), None, "{bad}");
    }
}

#[test]
fn every_user_part_is_scoped() {
    let input = form(&[part("user", None, "bob"), part("user", None, "eve")]);
    let (out, _) = run(input.as_bytes(), &[]).unwrap();
    assert!(
        out.contains("\r\n\r\nacme:bob\r\n") && out.contains("\r\n\r\nacme:eve\r\n"),
        "{out}"
    );
}

#[test]
fn refuses_what_werkzeug_might_read_differently() {
    let inner = format!("x\n--{B}\nContent-Disposition: form-data; name=\"user\"\n\nbob");
    let hidden = form(&[part("file", Some("a.png"), &inner)]);
    assert_eq!(
        run(hidden.as_bytes(), &[]),
        Err(Malformed),
        "LF-delimited part hidden in a file"
    );
    let folded =
        format!("--{B}\r\nContent-Disposition: form-data;\r\n name=\"user\"\r\n\r\nbob\r\n--{B}--\r\n");
    assert_eq!(run(folded.as_bytes(), &[]), Err(Malformed), "folded header");
    let extended =
        format!("--{B}\r\nContent-Disposition: form-data; name*=utf-8''user\r\n\r\nbob\r\n--{B}--\r\n");
    assert_eq!(run(extended.as_bytes(), &[]), Err(Malformed), "RFC 2231 name");
    let twice = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"x\"\r\n\
         Content-Disposition: form-data; name=\"user\"\r\n\r\nbob\r\n--{B}--\r\n"
    );
    assert_eq!(run(twice.as_bytes(), &[]), Err(Malformed), "two dispositions");
    for disposition in [
        "form-data; name*0=user",
        "form-data; x=a\"b; name=user; c\"",
        "form-data; name=\"x\"\nContent-Disposition: form-data; name=\"user\"",
    ] {
        let body = format!("--{B}\r\nContent-Disposition: {disposition}\r\n\r\nbob\r\n--{B}--\r\n");
        assert_eq!(run(body.as_bytes(), &[]), Err(Malformed), "{disposition}");
    }
    let lf_header =
        format!("--{B}\r\nX-A: y\nContent-Disposition: form-data; name=\"user\"\r\n\r\nbob\r\n--{B}--\r\n");
    assert_eq!(
        run(lf_header.as_bytes(), &[]),
        Err(Malformed),
        "header split by a bare LF"
    );
}

#[test]
fn a_preamble_or_a_boundary_werkzeug_reads_as_data_is_refused() {
    // werkzeug skips junk before the first boundary: `victim` would reach Dify unscoped.
    let preamble =
        format!("X--{B}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nvictim\r\n--{B}--\r\n");
    assert_eq!(
        run(preamble.as_bytes(), &[]),
        Err(Malformed),
        "junk before the first boundary"
    );
    assert_eq!(
        run(format!("\r\n{preamble}").as_bytes(), &[1]),
        Err(Malformed),
        "line break first"
    );
    // werkzeug reads `--BX: y` as data: the user part behind it would be hidden from Dify.
    let hidden = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nx\r\n--{B}X: y\r\n\
         Content-Disposition: form-data; name=\"user\"\r\n\r\nbob\r\n--{B}--\r\n"
    );
    assert_eq!(
        run(hidden.as_bytes(), &[]),
        Err(Malformed),
        "boundary followed by other bytes"
    );
    let inline = form(&[part("file", Some("a"), &format!("ab--{B}cd"))]);
    assert_eq!(
        run(inline.as_bytes(), &[]),
        Err(Malformed),
        "boundary inside a line"
    );
    let no_disposition = format!("--{B}\r\nX-A: b\r\n\r\nbob\r\n--{B}--\r\n");
    assert_eq!(
        run(no_disposition.as_bytes(), &[]),
        Err(Malformed),
        "part without a disposition"
    );
}

mod differential {
    //! Whatever the rewriter accepts, werkzeug (Dify's reader, transcribed in `scope::werkzeug`)
    //! reads the same parts from the input and the output, with every `user` scoped.
    use super::*;
    use crate::scope::werkzeug::{Part, parse};
    use proptest::prelude::*;

    const BD: &str = "bnd";

    fn token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "--bnd",
            "--bnd",
            "--bnd--",
            "\r\n",
            "\r\n",
            "\n",
            "\r",
            "--",
            " ",
            "\t",
            "X",
            "X: y",
            "bob",
            ":",
            "\r\n\r\n",
            "\n\n",
            "Content-Disposition: form-data; name=\"user\"",
            "Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"",
            "Content-Disposition: form-data; name=\"note\"",
            "Content-Type: image/png",
        ])
    }

    /// A well-formed body around some parts, so that the accepted path is exercised too.
    fn well_formed() -> impl Strategy<Value = Vec<u8>> {
        let p = (
            prop::sample::select(vec!["user", "file", "note"]),
            prop::collection::vec(token(), 0..4),
        );
        prop::collection::vec(p, 0..4).prop_map(|parts| {
            let mut body = String::new();
            for (name, value) in parts {
                let disp = if name == "file" {
                    "name=\"file\"; filename=\"a\""
                } else {
                    &format!("name=\"{name}\"")
                };
                body.push_str(&format!(
                    "--{BD}\r\nContent-Disposition: form-data; {disp}\r\n\r\n{}\r\n",
                    value.concat()
                ));
            }
            body.push_str(&format!("--{BD}--\r\n"));
            body.into_bytes()
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(token(), 0..24).prop_map(|t| t.concat().into_bytes()),
            well_formed(),
        ]
    }

    fn rewrite(input: &[u8], cut: usize) -> Option<Vec<u8>> {
        let mut s = MultipartScoper::new(BD, "acme");
        let mut out = Vec::new();
        let at = cut % (input.len() + 1);
        s.feed(&input[..at], &mut out).ok()?;
        s.feed(&input[at..], &mut out).ok()?;
        s.finish(&mut out).ok()?;
        Some(out)
    }

    fn users(parts: &[Part]) -> Vec<Vec<u8>> {
        let is_user = |p: &&Part| p.filename.is_none() && p.name.as_deref() == Some("user");
        parts.iter().filter(is_user).map(|p| p.data.clone()).collect()
    }

    fn others(parts: &[Part]) -> Vec<Part> {
        let is_user = |p: &&Part| p.filename.is_none() && p.name.as_deref() == Some("user");
        parts.iter().filter(|p| !is_user(p)).cloned().collect()
    }

    /// Checks one body; `Err` says how werkzeug and the rewriter differ.
    pub(crate) fn check(input: &[u8], cut: usize) -> Result<(), String> {
        let Some(output) = rewrite(input, cut) else {
            return Ok(()); // refused: nothing reaches Dify
        };
        let before = parse(input, BD.as_bytes()).ok_or("accepted a body werkzeug cannot read")?;
        let after = parse(&output, BD.as_bytes()).ok_or("werkzeug cannot read the rewritten body")?;
        if others(&before) != others(&after) {
            return Err(format!("parts differ: {before:?} vs {after:?}"));
        }
        let want: Vec<Vec<u8>> = match users(&before) {
            u if u.is_empty() => vec![b"acme:DEFAULT-USER".to_vec()],
            u => u
                .iter()
                .map(|v| format!("acme:{}", String::from_utf8_lossy(v)).into_bytes())
                .collect(),
        };
        if users(&after) != want {
            return Err(format!("users {:?}, want {want:?}", users(&after)));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn werkzeug_reads_what_the_rewriter_meant(input in body(), cut in any::<usize>()) {
            prop_assert_eq!(check(&input, cut), Ok(()), "{:?}", String::from_utf8_lossy(&input));
        }
    }
}
