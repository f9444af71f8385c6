//! Fuzzes the whole request grammar: the input is split into a query string, a `Prefer`
//! value and a `Range` value at its first two NUL bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maggate::request::{QueryParams, Request, RequestHeaders};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let qs = parts.next().unwrap_or("");
    let prefer = parts.next().unwrap_or("");
    let range = parts.next();
    let params = QueryParams::decode(qs);
    let prefer = [prefer];
    let headers = RequestHeaders {
        prefer: &prefer,
        range,
    };
    if let Err(e) = Request::parse(&params, &headers) {
        let _ = e.to_json();
    }
});
