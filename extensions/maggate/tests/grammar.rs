//! Data-driven grammar tests: a query string (and headers) in, a compact dump of the typed
//! request (or PostgREST's error) out.

// Test code: a failed write to a String or a failed parse should abort the test loudly.
#![allow(clippy::unwrap_used)]

mod common;

use common::{check, check_with};

#[test]
fn select_columns() {
    check("", "");
    check("select=*", "");
    check("select=id,name", "select field(id) field(name)");
    check("select=", "select");
    check(
        "select=full name, age",
        "select field(full name) field(age)",
    );
    check("select=first-name", "select field(first-name)");
    check(r#"select="a,b","c\"d""#, r#"select field(a,b) field(c"d)"#);
    check("select=alias:col", "select field(col as=alias)");
    check("select=id::text", "select field(id cast=text)");
    check("select=a:id::text", "select field(id as=a cast=text)");
    check("select=data->a->>b", "select field(data->'a'->>'b')");
    check("select=data->0->>-1", "select field(data->0->>-1)");
    check("select=data->1a", "select field(data->'1a')");
    check(
        "select=x:data->>k::int",
        "select field(data->>'k' as=x cast=int)",
    );
    check(r#"select=data->"a.b""#, "select field(data->'a.b')");
}

#[test]
fn select_aggregates() {
    check("select=count()", "select field(* agg=count)");
    check(
        "select=n:count()::int",
        "select field(* as=n agg=count aggcast=int)",
    );
    check("select=amount.sum()", "select field(amount agg=sum)");
    check(
        "select=amount.avg(),amount.min(),amount.max()",
        "select field(amount agg=avg) field(amount agg=min) field(amount agg=max)",
    );
    check(
        "select=total:amount::numeric.sum()::text,id.count()",
        "select field(amount as=total cast=numeric agg=sum aggcast=text) field(id agg=count)",
    );
    check(
        "select=customer,amount.sum()",
        "select field(customer) field(amount agg=sum)",
    );
}

#[test]
fn select_embedding() {
    check(
        "select=id,clients(name)",
        "select field(id) embed(clients)[field(name)]",
    );
    check(
        "select=*,client(*,nested(*))",
        "select * embed(client)[* embed(nested)[*]]",
    );
    check(
        "select=c:clients(id)",
        "select embed(clients as=c)[field(id)]",
    );
    check(
        "select=clients!inner(id)",
        "select embed(clients join=Inner)[field(id)]",
    );
    check(
        "select=clients!left(id)",
        "select embed(clients join=Left)[field(id)]",
    );
    check(
        "select=clients!fk_client(id)",
        "select embed(clients hint=fk_client)[field(id)]",
    );
    check(
        "select=clients!fk!inner(id)",
        "select embed(clients hint=fk join=Inner)[field(id)]",
    );
    check(
        "select=a:clients!inner!fk(*)",
        "select embed(clients as=a hint=fk join=Inner)[*]",
    );
    check(
        r#"select=clients!"inner"(*)"#,
        "select embed(clients hint=inner)[*]",
    );
    check(
        "select=...director(name)",
        "select spread(director)[field(name)]",
    );
    check(
        "select=...director!fk!inner(*)",
        "select spread(director hint=fk join=Inner)[*]",
    );
    check("select=rel()", "select embed(rel)[]");
    check(
        "select=films(title,actors(count()))",
        "select embed(films)[field(title) embed(actors)[field(* agg=count)]]",
    );
    check(
        "select= id , rel( a , b ) , c",
        "select field(id) embed(rel)[field(a) field(b)] field(c)",
    );
}

#[test]
fn select_errors() {
    check(
        "select=id,clients(name[])",
        r#"error PGRST100 400: "failed to parse select parameter (id,clients(name[]))" (line 1, column 16) | unexpected "[" expecting "->", "::", ".", ")", "," or end of input"#,
    );
    check(
        "select=name!hint",
        r#"error PGRST100 400: "failed to parse select parameter (name!hint)" (line 1, column 10) | unexpected end of input expecting "(""#,
    );
    check(
        "select=*!hint",
        r#"error PGRST100 400: "failed to parse select parameter (*!hint)" (line 1, column 2) | unexpected "!" expecting ")", "," or end of input"#,
    );
    check(
        "select=name::",
        r#"error PGRST100 400: "failed to parse select parameter (name::)" (line 1, column 7) | unexpected end of input expecting letter or digit"#,
    );
    check(
        "select=rel->x(*)",
        r#"error PGRST100 400: "failed to parse select parameter (rel->x(*))" (line 1, column 7) | unexpected "(" expecting "->", "::", ".", ")", "," or end of input"#,
    );
    check(
        "select=a,",
        r#"error PGRST100 400: "failed to parse select parameter (a,)" (line 1, column 3) | unexpected end of input expecting field name (* or [a..z0..9_$])"#,
    );
    check(
        "select=rel(a",
        r#"error PGRST100 400: "failed to parse select parameter (rel(a)" (line 1, column 6) | unexpected end of input expecting ")""#,
    );
    check(
        "select=rel(a)x",
        r#"error PGRST100 400: "failed to parse select parameter (rel(a)x)" (line 1, column 7) | unexpected "x" expecting "," or end of input"#,
    );
    check(
        "select=count(*)",
        r#"error PGRST100 400: "failed to parse select parameter (count(*))" (line 1, column 6) | unexpected "(" expecting "->", "::", ".", ")", "," or end of input"#,
    );
    check(
        "select=data->>-78xy",
        r#"error PGRST100 400: "failed to parse select parameter (data->>-78xy)" (line 1, column 8) | unexpected "-" expecting any non reserved character different from: .,>()"#,
    );
    check(
        "select=é[",
        r#"error PGRST100 400: "failed to parse select parameter (\233[)" (line 1, column 2) | unexpected "[" expecting "->", "::", ".", ")", "," or end of input"#,
    );
}

#[test]
fn filters_operators() {
    check("id=eq.1", r#"filter id: eq "1""#);
    check("id=neq.1", r#"filter id: neq "1""#);
    check(
        "age=gt.18&age=lte.65",
        "filter age: gt \"18\"\nfilter age: lte \"65\"",
    );
    check(
        "age=gte.1&age=lt.9",
        "filter age: gte \"1\"\nfilter age: lt \"9\"",
    );
    check("name=like.*ohn*", r#"filter name: like "*ohn*""#);
    check("name=ilike.*OHN*", r#"filter name: ilike "*OHN*""#);
    check(
        "name=match.^J&name=imatch.^j",
        "filter name: match \"^J\"\nfilter name: imatch \"^j\"",
    );
    check(
        "tags=cs.{a,b}&tags=cd.{a}",
        "filter tags: cs \"{a,b}\"\nfilter tags: cd \"{a}\"",
    );
    check(
        "r=ov.[1,2]&r=sl.(1,2)&r=sr.(1,2)",
        "filter r: ov \"[1,2]\"\nfilter r: sl \"(1,2)\"\nfilter r: sr \"(1,2)\"",
    );
    check(
        "r=nxl.(1,2)&r=nxr.(1,2)&r=adj.(1,2)",
        "filter r: nxl \"(1,2)\"\nfilter r: nxr \"(1,2)\"\nfilter r: adj \"(1,2)\"",
    );
    check("a=isdistinct.x", r#"filter a: isdistinct "x""#);
    check("v=eq.a.b.c", r#"filter v: eq "a.b.c""#);
    check(r#"v=eq."quoted""#, r#"filter v: eq "\"quoted\"""#);
    check("v=eq.", r#"filter v: eq """#);
    check("v=eq.a+b%26c", r#"filter v: eq "a b&c""#);
}

#[test]
fn filters_modifiers() {
    check("id=not.eq.1", r#"filter id: not eq "1""#);
    check("name=eq(any).{a,b}", r#"filter name: eq(any) "{a,b}""#);
    check(
        "name=like(all).{a%25,%25b}",
        r#"filter name: like(all) "{a%,%b}""#,
    );
    check(
        "name=not.ilike(any).{x}",
        r#"filter name: not ilike(any) "{x}""#,
    );
    check("id=in.(1,2,3)", r#"filter id: in ["1", "2", "3"]"#);
    check(
        r#"n=in.("a,b",c,"d\"e")"#,
        r#"filter n: in ["a,b", "c", "d\"e"]"#,
    );
    check("n=in.( a, b )", r#"filter n: in ["a", " b "]"#);
    check("n=in.()", r#"filter n: in [""]"#);
    check("n=not.in.(1)", r#"filter n: not in ["1"]"#);
    check(
        "a=is.null&b=is.NOT_NULL&c=is.true&d=is.False&e=is.unknown",
        "filter a: is null\nfilter b: is not_null\nfilter c: is true\nfilter d: is false\nfilter e: is unknown",
    );
    check("t=fts.cat", r#"filter t: fts "cat""#);
    check(
        "t=plfts(english).fat cat",
        r#"filter t: plfts(english) "fat cat""#,
    );
    check(
        "t=phfts(simple).a&t=not.wfts.b",
        "filter t: phfts(simple) \"a\"\nfilter t: not wfts \"b\"",
    );
}

#[test]
fn filters_paths() {
    check("data->>a=eq.x", r#"filter data->>'a': eq "x""#);
    check("data->a->>0=eq.x", r#"filter data->'a'->>0: eq "x""#);
    check("clients.name=eq.x", r#"filter clients/name: eq "x""#);
    check("a.b.col=gt.2", r#"filter a/b/col: gt "2""#);
    check("a.data->>k=is.null", "filter a/data->>'k': is null");
    check(r#""my.col"=eq.1"#, r#"filter my.col: eq "1""#);
    check(r#""order"=eq.1"#, r#"filter order: eq "1""#);
    check("flag", "");
    check("select.x=eq.1", r#"filter select/x: eq "1""#);
}

#[test]
fn filter_errors() {
    check(
        "a.b=noop.0",
        r#"error PGRST100 400: "failed to parse filter (noop.0)" (line 1, column 1) | unexpected "o" expecting "not" or operator (eq, gt, ...)"#,
    );
    check(
        "id=val",
        r#"error PGRST100 400: "failed to parse filter (val)" (line 1, column 1) | unexpected "v" expecting "not" or operator (eq, gt, ...)"#,
    );
    check(
        "id=",
        r#"error PGRST100 400: "failed to parse filter ()" (line 1, column 1) | unexpected end of input expecting "not" or operator (eq, gt, ...)"#,
    );
    check(
        "id=not.foo.1",
        r#"error PGRST100 400: "failed to parse filter (not.foo.1)" (line 1, column 5) | unexpected "f" expecting operator (eq, gt, ...)"#,
    );
    check(
        "id=eq",
        r#"error PGRST100 400: "failed to parse filter (eq)" (line 1, column 3) | unexpected end of input expecting delimiter (.)"#,
    );
    check(
        "id=eq(some).1",
        r#"error PGRST100 400: "failed to parse filter (eq(some).1)" (line 1, column 3) | unexpected "(" expecting delimiter (.)"#,
    );
    check(
        "id=is.maybe",
        r#"error PGRST100 400: "failed to parse filter (is.maybe)" (line 1, column 4) | unexpected "m" expecting isVal: (null, not_null, true, false, unknown)"#,
    );
    check(
        "id=is.nullx",
        r#"error PGRST100 400: "failed to parse filter (is.nullx)" (line 1, column 8) | unexpected "x" expecting end of input"#,
    );
    check(
        "id=in.1,2",
        r#"error PGRST100 400: "failed to parse filter (in.1,2)" (line 1, column 4) | unexpected "1" expecting "(""#,
    );
    check(
        "id=in.(1,2",
        r#"error PGRST100 400: "failed to parse filter (in.(1,2)" (line 1, column 8) | unexpected end of input expecting ")""#,
    );
    check(
        "t=fts().x",
        r#"error PGRST100 400: "failed to parse filter (fts().x)" (line 1, column 5) | unexpected ")" expecting letter or digit"#,
    );
    check(
        "a->=eq.1",
        r#"error PGRST100 400: "failed to parse tree path (a->)" (line 1, column 4) | unexpected end of input expecting any non reserved character different from: .,>()"#,
    );
    check(
        "a.=eq.1",
        r#"error PGRST100 400: "failed to parse tree path (a.)" (line 1, column 3) | unexpected end of input expecting field name (* or [a..z0..9_$])"#,
    );
}

#[test]
fn logic_trees() {
    check("or=(a.eq.1,b.gt.2)", r#"logic Or(a: eq "1", b: gt "2")"#);
    check(
        "and=(a.eq.1,or(b.gt.2,c.lt.3))",
        r#"logic And(a: eq "1", Or(b: gt "2", c: lt "3"))"#,
    );
    check(
        "not.or=(a.eq.1,b.is.null)",
        r#"logic not Or(a: eq "1", b: is null)"#,
    );
    check(
        "or=(a.eq.1,not.and(b.gt.2,c.not.lt.3))",
        r#"logic Or(a: eq "1", not And(b: gt "2", c: not lt "3"))"#,
    );
    check(
        "clients.or=(a.eq.1,b.eq.2)",
        r#"logic clients/Or(a: eq "1", b: eq "2")"#,
    );
    check("a.b.not.and=(x.eq.1)", r#"logic a/b/not And(x: eq "1")"#);
    check(
        r#"or=(name.eq."a,b",name.eq."c)")"#,
        r#"logic Or(name: eq "a,b", name: eq "c)")"#,
    );
    check(
        "or=(tags.cs.{a,b},id.in.(1,2))",
        r#"logic Or(tags: cs "{a,b}", id: in ["1", "2"])"#,
    );
    check(
        "or=(t.fts(english).cat,d->>k.eq.1)",
        r#"logic Or(t: fts(english) "cat", d->>'k': eq "1")"#,
    );
    check(
        "or=( a.eq.1 , b.eq.2 )",
        r#"logic Or(a: eq "1 ", b: eq "2 ")"#,
    );
    check(
        "or=(a.eq(any).{1,2},b.isdistinct.x)",
        r#"logic Or(a: eq(any) "{1,2}", b: isdistinct "x")"#,
    );
}

#[test]
fn logic_errors() {
    check(
        "or=()",
        r#"error PGRST100 400: "failed to parse logic tree (())" (line 1, column 4) | unexpected ")" expecting field name (* or [a..z0..9_$]), negation operator (not) or logic operator (and, or)"#,
    );
    check(
        "or=(id.in.1,2,id.eq.3)",
        r#"error PGRST100 400: "failed to parse logic tree ((id.in.1,2,id.eq.3))" (line 1, column 10) | unexpected "1" expecting "(""#,
    );
    check(
        "or=)(",
        r#"error PGRST100 400: "failed to parse logic tree ()()" (line 1, column 3) | unexpected ")" expecting "(""#,
    );
    check(
        "and=(ord(id.eq.1,id.eq.1),id.eq.2)",
        r#"error PGRST100 400: "failed to parse logic tree ((ord(id.eq.1,id.eq.1),id.eq.2))" (line 1, column 7) | unexpected "d" expecting "(""#,
    );
    check(
        "or=(id.eq.1,not.xor(id.eq.2,id.eq.3))",
        r#"error PGRST100 400: "failed to parse logic tree ((id.eq.1,not.xor(id.eq.2,id.eq.3)))" (line 1, column 16) | unexpected "x" expecting logic operator (and, or)"#,
    );
    check(
        "or=(a.eq.1)x",
        r#"error PGRST100 400: "failed to parse logic tree ((a.eq.1)x)" (line 1, column 11) | unexpected "x" expecting end of input"#,
    );
}

#[test]
fn order_terms() {
    check("order=name", "order name");
    check(
        "order=name.desc.nullsfirst,id",
        "order name desc nullsfirst, id",
    );
    check(
        "order=json_col->key.asc.nullslast",
        "order json_col->'key' asc nullslast",
    );
    check("order=clients(name).desc", "order clients(name) desc");
    check(
        "order=name,clients(name),id",
        "order name, clients(name), id",
    );
    check("order=id.nullslast", "order id nullslast");
    check("actors.order=last_name.asc", "order actors/last_name asc");
    check(
        "order=id.ac",
        r#"error PGRST100 400: "failed to parse order (id.ac)" (line 1, column 4) | unexpected "a" expecting "asc", "desc", "nullsfirst" or "nullslast""#,
    );
    check(
        "order=id.descc",
        r#"error PGRST100 400: "failed to parse order (id.descc)" (line 1, column 8) | unexpected "c" expecting "nullsfirst" or "nullslast", "," or end of input"#,
    );
    check(
        "order=id.asc.nullslasttt",
        r#"error PGRST100 400: "failed to parse order (id.asc.nullslasttt)" (line 1, column 17) | unexpected "t" expecting "," or end of input"#,
    );
    check(
        "order=clients(name,id)",
        r#"error PGRST100 400: "failed to parse order (clients(name,id))" (line 1, column 13) | unexpected "," expecting ")""#,
    );
}

#[test]
fn columns_on_conflict_limits() {
    check("columns=a,b", "columns a, b");
    check("on_conflict=id, email", "on_conflict id, email");
    check(
        "columns=a,,b",
        r#"error PGRST100 400: "failed to parse columns parameter (a,,b)" (line 1, column 3) | unexpected "," expecting field name (* or [a..z0..9_$])"#,
    );
    check(
        "on_conflict=",
        r#"error PGRST100 400: "failed to parse on_conflict parameter ()" (line 1, column 1) | unexpected end of input expecting field name (* or [a..z0..9_$])"#,
    );
    check("limit=10", "limit 10 offset -\nwindow offset=0 limit=10");
    check(
        "limit=10&offset=20",
        "limit 10 offset 20\nwindow offset=20 limit=10",
    );
    check("offset=5", "limit - offset 5\nwindow offset=5 limit=all");
    check(
        "limit=1&limit=3",
        "limit 3 offset -\nwindow offset=0 limit=3",
    );
    check("actors.limit=2&actors.offset=1", "limit actors/2 offset 1");
    check("limit=abc", "limit - offset -");
    check("limit=0", "limit 0 offset -\nwindow offset=0 limit=0");
    check(
        "limit=-1",
        "error PGRST103 416: Requested range not satisfiable | Limit should be greater than or equal to zero.",
    );
    check(
        "offset=-1",
        "error PGRST103 416: Requested range not satisfiable | Offset should be greater than or equal to zero.",
    );
    check(
        "actors.limit=-2",
        "error PGRST103 416: Requested range not satisfiable | Limit should be greater than or equal to zero.",
    );
}

#[test]
fn range_header() {
    check_with("", &[], Some("0-9"), "window offset=0 limit=10");
    check_with("", &[], Some("10-"), "window offset=10 limit=all");
    check_with("", &[], Some("items=0-9"), "");
    check_with(
        "limit=5",
        &[],
        Some("0-9"),
        "limit 5 offset -\nwindow offset=0 limit=5",
    );
    check_with(
        "offset=5",
        &[],
        Some("0-9"),
        "limit - offset 5\nwindow offset=5 limit=5",
    );
    check_with(
        "limit=0",
        &[],
        Some("5-9"),
        "limit 0 offset -\nwindow offset=0 limit=0",
    );
    check_with(
        "",
        &[],
        Some("10-5"),
        "error PGRST103 416: Requested range not satisfiable | The lower boundary must be lower than or equal to the upper boundary in the Range header.",
    );
    check_with(
        "offset=20",
        &[],
        Some("0-9"),
        "error PGRST103 416: Requested range not satisfiable | Limit should be greater than or equal to zero.",
    );
}

#[test]
fn prefer_header() {
    check_with("", &["return=minimal"], None, "prefer return=Minimal");
    check_with(
        "",
        &["return=headers-only, count=planned"],
        None,
        "prefer return=HeadersOnly count=Planned",
    );
    check_with(
        "",
        &[
            "resolution=merge-duplicates",
            "missing=default",
            "tx=rollback",
        ],
        None,
        "prefer resolution=MergeDuplicates missing=Default tx=Rollback",
    );
    check_with(
        "",
        &["count=exact,    tx=commit   ,return=representation , handling=lenient, anything"],
        None,
        r#"prefer return=Representation count=Exact handling=Lenient tx=Commit invalid=["anything"]"#,
    );
    check_with(
        "",
        &["tx=commit, tx=rollback", "count=estimated"],
        None,
        "prefer count=Estimated tx=Commit",
    );
    check_with(
        "",
        &["timezone=America/Los_Angeles, max-affected=100, resolution=ignore-duplicates"],
        None,
        "prefer resolution=IgnoreDuplicates timezone=America/Los_Angeles max-affected=100",
    );
    check_with(
        "",
        &["handling=strict, bogus=1", "other"],
        None,
        "error PGRST122 400: Invalid preferences given with handling=strict | Invalid preferences: bogus=1, other",
    );
    check_with(
        "",
        &["handling=strict, count=exact,"],
        None,
        "error PGRST122 400: Invalid preferences given with handling=strict | Invalid preferences: ",
    );
    check_with(
        "",
        &["handling=strict, max-affected=x, params=single-object"],
        None,
        "prefer handling=Strict params=single-object",
    );
}

#[test]
fn query_string_routing() {
    check("select=a&select=b", "select field(a)");
    check("select&select=b", "");
    check(
        "id=eq.1;name=eq.x",
        "filter id: eq \"1\"\nfilter name: eq \"x\"",
    );
    check("?select=id", "select field(id)");
    check("select=id%2Cname", "select field(id) field(name)");
    check(
        "order=",
        r#"error PGRST100 400: "failed to parse order ()" (line 1, column 1) | unexpected end of input expecting field name (* or [a..z0..9_$])"#,
    );
}

#[test]
fn error_json_shape() {
    let params = maggate::request::QueryParams::decode("id=val");
    let err = maggate::request::ApiQuery::parse(&params).unwrap_err();
    assert_eq!(
        err.to_json(),
        r#"{"code":"PGRST100","message":"\"failed to parse filter (val)\" (line 1, column 1)","details":"unexpected \"v\" expecting \"not\" or operator (eq, gt, ...)","hint":null}"#
    );
    let err = maggate::request::effective_range(Default::default(), Some("3-1")).unwrap_err();
    assert_eq!(err.status(), 416);
    assert!(
        err.to_json()
            .starts_with(r#"{"code":"PGRST103","message":"Requested range not satisfiable","#)
    );
}
