//! Fuzzes the streaming multipart `user` rewriter: any body, split anywhere, never panics; the split
//! gives the same output (or the same refusal) as the whole body; and whatever it accepts, werkzeug
//! (Dify's reader) reads the same parts from the input and the output, every `user` scoped.
#![no_main]

use dify_gateway_fuzz::scope::multipart::MultipartScoper;
use dify_gateway_fuzz::scope::werkzeug::{Part, parse};
use libfuzzer_sys::fuzz_target;

const B: &str = "b0undary";

fn run(chunks: &[&[u8]]) -> Option<Vec<u8>> {
    let mut s = MultipartScoper::new(B, "acme");
    let mut out = Vec::new();
    for c in chunks {
        s.feed(c, &mut out).ok()?;
    }
    s.finish(&mut out).ok()?;
    Some(out)
}

fn split(parts: &[Part]) -> (Vec<Vec<u8>>, Vec<Part>) {
    let is_user = |p: &Part| p.filename.is_none() && p.name.as_deref() == Some("user");
    let users = parts
        .iter()
        .filter(|p| is_user(p))
        .map(|p| p.data.clone())
        .collect();
    let others = parts.iter().filter(|p| !is_user(p)).cloned().collect();
    (users, others)
}

fuzz_target!(|input: (u16, &[u8])| {
    let (cut, data) = input;
    let at = usize::from(cut) % (data.len() + 1);
    let whole = run(&[data]);
    assert_eq!(whole, run(&[&data[..at], &data[at..]]));
    let Some(out) = whole else { return };
    let before = parse(data, B.as_bytes()).expect("accepted a body werkzeug cannot read");
    let after = parse(&out, B.as_bytes()).expect("werkzeug cannot read the rewritten body");
    let ((users_in, others_in), (users_out, others_out)) = (split(&before), split(&after));
    assert_eq!(others_in, others_out, "parts differ");
    let want: Vec<Vec<u8>> = if users_in.is_empty() {
        vec![b"acme:DEFAULT-USER".to_vec()]
    } else {
        users_in
            .iter()
            .map(|u| format!("acme:{}", String::from_utf8_lossy(u)).into_bytes())
            .collect()
    };
    assert_eq!(users_out, want);
});
