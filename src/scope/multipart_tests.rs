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
