#!/usr/bin/env python3
"""Build SQLGuard's *external* evaluation corpus from public packages, not from our generator.

Why: the generated corpus (sentinel/src/corpus) and layer 1 were written by the same hands,
so its held-out split flatters SQLGuard. This script draws attacks and benign values from
other people's work and writes them, already split, to sentinel/tests/data/external/:

* attacks: sqlmap's payload templates (PyPI `sqlmap`, data/xml/payloads/*.xml combined with
  data/xml/boundaries.xml the way sqlmap's agent prefixes and suffixes them, tags filled with
  random values), some of them passed through sqlmap's own tamper scripts; and the SQL list
  of the Debian package `wfuzz` (wordlist/Injections/SQL.txt, bare probes such as a lone
  quote dropped).
* benign: PyPI `Faker` in 30 locales (names with apostrophes, addresses, companies, free
  text, e-mails, URLs, JSON, passwords, user agents, ...), PostgREST filter values built
  from those, and sentences of Python's own documentation (`pydoc_data.topics` and standard
  library docstrings: prose that says select, union, drop, update, where, and, or).

The split is by *group* (sqlmap test title, wfuzz line, Faker locale, documentation
module), hashed with SHA-256: a held-out group's values never reach training, so held-out
attacks come from sqlmap templates the model never saw, and held-out benign values from
locales and modules it never saw.

Reproduce (needs network access to PyPI and Debian's archive only):

    python3 -m venv /tmp/extvenv && /tmp/extvenv/bin/pip install faker==40.63.0
    /tmp/extvenv/bin/python sentinel/corpus-tools/external_corpus.py

Output is deterministic for the pinned versions (fixed seeds, sorted inputs).
"""

import argparse
import datetime
import glob
import hashlib
import importlib
import inspect
import json
import os
import pkgutil
import random
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile

SQLMAP_VERSION = "1.10.10"
WFUZZ_VERSION = "3.1.0-2"
FAKER_VERSION = "40.63.0"
SEED = 20261206
HELD_OUT_PERCENT = 30
MAX_LEN = 400

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "tests", "data", "external"))


def held_out(group):
    """Whether a group goes to the held-out split: SHA-256 of its key, stable everywhere."""
    h = int.from_bytes(hashlib.sha256(group.encode()).digest()[:4], "big")
    return h % 100 < HELD_OUT_PERCENT


def clean(value):
    """One line, no control characters that would break the file format; None if unusable."""
    if value is None:
        return None
    value = value.replace("\r", " ").replace("\n", " ").replace("\t", " ").strip()
    if not value or len(value) > MAX_LEN or value.startswith("# "):
        return None
    return value


# ---------------------------------------------------------------- sources


def fetch_sqlmap(work):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", work,
         f"sqlmap=={SQLMAP_VERSION}"],
        check=True,
    )
    wheel = glob.glob(os.path.join(work, f"sqlmap-{SQLMAP_VERSION}-*.whl"))[0]
    dest = os.path.join(work, "sqlmap-wheel")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(dest)
    return os.path.join(dest, "sqlmap")


def fetch_wfuzz(work):
    subprocess.run(["apt-get", "download", f"wfuzz={WFUZZ_VERSION}"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deb = glob.glob(os.path.join(work, "wfuzz_*.deb"))[0]
    dest = os.path.join(work, "wfuzz")
    subprocess.run(["dpkg", "-x", deb, dest], check=True)
    return os.path.join(dest, "usr/share/wfuzz/wordlist/Injections/SQL.txt")


# ---------------------------------------------------------------- attacks

INFERENCE = [
    "ORD(MID((SELECT IFNULL(CAST(password AS NCHAR),0x20) FROM users LIMIT 0,1),{n},1))>{c}",
    "ASCII(SUBSTRING((SELECT COALESCE(usename::text,CHR(32)) FROM pg_user OFFSET 0 LIMIT 1)::text FROM {n} FOR 1))>{c}",
    "UNICODE(SUBSTRING((SELECT TOP 1 ISNULL(CAST(name AS NVARCHAR(4000)),CHAR(32)) FROM master..sysdatabases),{n},1))>{c}",
    "UNICODE(SUBSTR((SELECT COALESCE(tbl_name,CHAR(32)) FROM sqlite_master LIMIT 1),{n},1))>{c}",
    "ASCII(SUBSTRC((SELECT NVL(CAST(banner AS NVARCHAR(4000)),CHR(32)) FROM v$version WHERE ROWNUM=1),{n},1))>{c}",
    "{r}={r}",
    "{r}={r2}",
]
QUERIES = [
    "SELECT version()", "SELECT @@version", "SELECT user()", "SELECT current_user",
    "SELECT banner FROM v$version WHERE ROWNUM=1", "SELECT sqlite_version()",
    "SELECT name FROM sysobjects", "SELECT table_name FROM information_schema.tables",
]
COMMENTS = ["-- -", "--", "#", "/*", "-- [RANDSTR]"]


def rand_str(rng, n=4):
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(n))


def fill(template, rng, orig):
    """Replace sqlmap's tags with concrete values, as sqlmap does at run time."""
    r = str(rng.randint(1000, 9999))
    values = {
        "[RANDNUM]": r,
        "[RANDNUM1]": str(rng.randint(1000, 9999)),
        "[RANDNUM2]": str(rng.randint(1000, 9999)),
        "[RANDNUM3]": str(rng.randint(1000, 9999)),
        "[RANDNUM4]": str(rng.randint(1000, 9999)),
        "[RANDNUM5]": str(rng.randint(1000, 9999)),
        "[RANDSTR]": rand_str(rng),
        "[RANDSTR1]": rand_str(rng),
        "[RANDSTR2]": rand_str(rng),
        "[SLEEPTIME]": str(rng.choice([5, 5, 3, 10])),
        "[DELAYED]": str(rng.choice([5, 5, 3, 10])),
        "[DELIMITER_START]": "q" + rand_str(rng, 3).lower() + "q",
        "[DELIMITER_STOP]": "q" + rand_str(rng, 3).lower() + "q",
        "[ORIGVALUE]": orig,
        "[ORIGINAL]": orig,
        "[GENERIC_SQL_COMMENT]": rng.choice(COMMENTS),
        "[QUERY]": rng.choice(QUERIES),
        "[SPACE_REPLACE]": " ",
        "[HASH_REPLACE]": "#",
        "[DOLLAR_REPLACE]": "$",
        "[AT_REPLACE]": "@",
    }
    out = template
    if "[INFERENCE]" in out:
        inf = rng.choice(INFERENCE).format(
            n=rng.randint(1, 12), c=rng.choice([48, 64, 96, 112]), r=r,
            r2=rng.randint(1000, 9999))
        out = out.replace("[INFERENCE]", inf)
    for _ in range(2):  # a filled [QUERY] or comment may itself hold a tag
        for k, v in values.items():
            out = out.replace(k, v)
    return out


def union_payload(test, rng):
    """sqlmap's [UNION] vector: UNION [ALL] SELECT with n columns, one of them the marker."""
    char = test.findtext("request/char") or "NULL"
    if "[CHAR]" in char:
        char = "NULL"
    if "[RANDNUM]" in char:
        char = str(rng.randint(1000, 9999))
    cols = rng.randint(1, 10)
    items = [char] * cols
    marker = "CONCAT(0x{0},0x{1})".format(
        "".join(f"{ord(c):02x}" for c in "q" + rand_str(rng, 3).lower() + "q"),
        "".join(f"{ord(c):02x}" for c in rand_str(rng, 8)))
    items[rng.randrange(cols)] = rng.choice([marker, "'qkxbq'||'abcd'||'qvzkq'", char])
    tail = ""
    title = test.findtext("title") or ""
    if "MS Access" in title or "Oracle" in title:
        tail = " FROM DUAL" if "Oracle" in title else " FROM MSysAccessStorage"
    return f"UNION {rng.choice(['ALL ', 'ALL ', ''])}SELECT {','.join(items)}{tail}"


def parse_ints(text):
    return {int(x) for x in (text or "").split(",") if x.strip().isdigit()}


def sqlmap_attacks(sqlmap_dir, rng, per_test):
    """(group, value) pairs from sqlmap's payload templates and boundaries."""
    xml_dir = os.path.join(sqlmap_dir, "data", "xml")
    boundaries = [
        {
            "clause": parse_ints(b.findtext("clause")),
            "where": parse_ints(b.findtext("where")),
            "ptype": int(b.findtext("ptype")),
            "prefix": b.findtext("prefix") or "",
            "suffix": b.findtext("suffix") or "",
        }
        for b in ET.parse(os.path.join(xml_dir, "boundaries.xml")).getroot().findall("boundary")
    ]
    out = []
    for path in sorted(glob.glob(os.path.join(xml_dir, "payloads", "*.xml"))):
        for test in ET.parse(path).getroot().findall("test"):
            title = test.findtext("title")
            stype = int(test.findtext("stype"))
            clauses = parse_ints(test.findtext("clause"))
            wheres = parse_ints(test.findtext("where"))
            payload = test.findtext("vector") or test.findtext("request/payload") or ""
            comment = test.findtext("request/comment") or ""
            fitting = [b for b in boundaries
                       if (b["clause"] & clauses or 0 in b["clause"] or 0 in clauses)
                       and b["where"] & wheres]
            if not fitting:
                continue
            group = f"sqlmap:{title}"
            for _ in range(per_test):
                b = rng.choice(fitting)
                where = rng.choice(sorted(b["where"] & wheres))
                body = union_payload(test, rng) if payload.strip() == "[UNION]" else payload
                orig = rng.choice(["1", "1", "42", "admin", "test", "id"]) if b["ptype"] == 1 \
                    else rng.choice(["1", "admin", "john", "test", "abc"])
                if b["ptype"] == 1 and orig.isalpha():
                    orig = "1"
                # Agent.prefixQuery / suffixQuery: where=1 appends to the original value,
                # where=2 replaces it with a negative number, where=3 replaces it outright.
                if where == 3:
                    head = ""
                elif where == 2:
                    head = "-" + str(rng.randint(1000, 9999))
                else:
                    head = orig
                if where == 3:
                    value = body
                elif stype == 4:  # stacked queries: no space after the prefix
                    value = head + b["prefix"] + body
                else:
                    value = head + b["prefix"] + " " + body
                if comment:
                    value += comment
                elif b["suffix"] and where != 3:
                    if re.search(r"\w\Z", value) and re.search(r"\A\w", b["suffix"]):
                        value += " "
                    value += b["suffix"]
                value = fill(re.sub(r";\W*;", ";", value), rng, orig)
                out.append((group, value))
    return out


# Tamper scripts that change the payload itself (not headers) and keep it an SQL value.
TAMPERS = [
    "apostrophemask", "apostrophenullencode", "between", "binary", "charencode",
    "charunicodeencode", "charunicodeescape", "commentbeforeparentheses", "concat2concatws",
    "decentities", "equaltolike", "equaltorlike", "escapequotes", "greatest", "hex2char",
    "hexentities", "htmlencode", "if2case", "ifnull2casewhenisnull", "least", "lowercase",
    "misunion", "modsecurityversioned", "modsecurityzeroversioned", "multiplespaces",
    "percentage", "randomcase", "randomcomments", "space2comment", "space2dash", "space2hash",
    "space2morecomment", "space2morehash", "space2mssqlblank", "space2mysqlblank",
    "space2mysqldash", "space2plus", "space2randomblank", "symboliclogical",
    "unionalltounion", "unmagicquotes", "uppercase", "versionedkeywords",
    "versionedmorekeywords", "0eunion", "dunion", "sp_password", "charencode",
]


def load_tampers(sqlmap_dir):
    sys.path.insert(0, sqlmap_dir)
    from lib.core.data import kb  # sqlmap's global state some tampers read

    with open(os.path.join(sqlmap_dir, "data", "txt", "keywords.txt")) as f:
        kb.keywords = {l.strip().upper() for l in f if l.strip() and not l.startswith("#")}
    tampers = {}
    for name in sorted(set(TAMPERS)):
        try:
            tampers[name] = importlib.import_module("tamper." + name).tamper
        except Exception:  # a tamper that needs a live sqlmap run is skipped
            continue
    return tampers


def tampered(pairs, sqlmap_dir, rng, share):
    tampers = load_tampers(sqlmap_dir)
    names = sorted(tampers)
    out = []
    for group, value in pairs:
        if rng.random() >= share:
            continue
        name = rng.choice(names)
        random.seed(rng.random())  # tampers draw from the global generator
        try:
            t = tampers[name](value)
        except Exception:
            continue
        if t and t != value:
            out.append((group, t))
    return out


def wfuzz_attacks(path):
    out = []
    with open(path, encoding="latin-1") as f:
        for line in f:
            v = line.rstrip("\n")
            # Bare probes (a lone quote, `--`, `#`) and lone keywords (`insert`, `handler`)
            # are not injections on their own; the list also holds LDAP (`*(|(mail=*))`)
            # and shell (`$(sleep 50)`) payloads, which are not SQL.
            if len(v) < 6 or not re.search(r"[A-Za-z]", v) or re.fullmatch(r"[A-Za-z_]+", v):
                continue
            if "*(|" in v or "$(" in v:
                continue
            out.append((f"wfuzz:{v}", v))
    return out


# ---------------------------------------------------------------- benign

LOCALES = [
    "en_US", "en_GB", "en_IE", "en_AU", "en_IN", "fr_FR", "fr_CA", "it_IT", "de_DE", "es_ES",
    "es_MX", "pt_BR", "pt_PT", "nl_NL", "pl_PL", "ru_RU", "uk_UA", "cs_CZ", "sv_SE", "fi_FI",
    "tr_TR", "el_GR", "he_IL", "ar_AA", "fa_IR", "hi_IN", "ja_JP", "zh_CN", "ko_KR", "vi_VN",
]

FAKER_KINDS = [
    "name", "last_name", "first_name", "name", "address", "street_address", "city", "company",
    "catch_phrase", "bs", "job", "email", "free_email", "url", "uri", "user_name",
    "phone_number", "sentence", "paragraph", "text", "date", "iso8601", "ipv4", "ipv6",
    "user_agent", "password", "file_path", "uuid4", "iban", "color_name", "postcode",
    "license_plate", "isbn13", "currency_name", "emoji", "word", "words", "slug", "json",
    "domain_name", "mac_address", "sha1", "pyint", "pydecimal", "date_time", "time",
]


def fixed_date_time(fake):
    """Faker's own date providers end at *now*; a fixed range keeps the output reproducible."""
    return fake.date_time_between(start_date=datetime.datetime(1950, 1, 1),
                                  end_date=datetime.datetime(2025, 1, 1))


def faker_value(fake, kind, rng):
    try:
        if kind == "date":
            return fixed_date_time(fake).date().isoformat()
        if kind == "iso8601":
            return fixed_date_time(fake).isoformat()
        if kind == "time":
            return fixed_date_time(fake).strftime("%H:%M:%S")
        if kind == "text":
            return fake.text(max_nb_chars=rng.choice([80, 160, 300]))
        if kind == "paragraph":
            return fake.paragraph(nb_sentences=rng.randint(1, 4))
        if kind == "words":
            return " ".join(fake.words(nb=rng.randint(2, 6)))
        if kind == "password":
            return fake.password(length=rng.randint(8, 20))
        if kind == "json":
            return fake.json(num_rows=1, data_columns={"name": "name", "city": "city",
                                                       "note": "sentence"})
        if kind == "date_time":
            return str(fixed_date_time(fake))
        if kind in ("pyint", "pydecimal"):
            return str(getattr(fake, kind)())
        return str(getattr(fake, kind)())
    except Exception:
        return None


def postgrest_value(fake, rng):
    """A PostgREST filter value built around a Faker value (MagGate reads these)."""
    v = rng.choice([fake.last_name(), fake.city(), fake.word(), fake.first_name()])
    n = rng.randint(0, 5000)
    return rng.choice([
        f"eq.{v}", f"neq.{v}", f"ilike.*{v}*", f"like.{v}*", f"in.({v},{fake.last_name()})",
        f"gte.{n}", f"lt.{n}", "is.null", "not.is.null", f"eq.{fixed_date_time(fake).date().isoformat()}",
        f"or=(name.eq.{v},age.gt.{n % 90})", f"fts.{v}", f"cs.{{{v}}}",
        f"order=name.asc,id.desc", f"select=id,name,{v.lower()}", f"not.eq.{v}",
    ])


def faker_benign(rng, per_locale):
    from faker import Faker

    out = []
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(SEED + LOCALES.index(locale))
        group = f"faker:{locale}"
        for _ in range(per_locale):
            if rng.random() < 0.06:
                v = postgrest_value(fake, rng)
            else:
                v = faker_value(fake, rng.choice(FAKER_KINDS), rng)
            out.append((group, v))
    return out


SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
SQL_WORDS = re.compile(
    r"\b(select|union|drop|update|insert|delete|where|order|group|having|from|join|table|"
    r"or|and|not|null|like|exec|sleep|case|when|limit|--)\b", re.I)


def doc_sentences(text):
    text = re.sub(r"\s+", " ", text or "")
    for s in SENTENCE.split(text):
        s = s.strip()
        if 12 <= len(s) <= 300:
            yield s


def python_docs_benign(rng, per_group):
    """Sentences from Python's reference topics and standard-library docstrings."""
    groups = {}
    try:
        from pydoc_data import topics

        for name, body in sorted(topics.topics.items()):
            groups.setdefault(f"pydoc:{name}", []).extend(doc_sentences(body))
    except ImportError:
        pass
    skip = ("test", "idlelib", "tkinter", "lib2to3", "turtledemo", "ensurepip", "antigravity",
            "this", "pydoc_data", "__")
    names = sorted(m.name for m in pkgutil.iter_modules()
                   if m.name in sys.stdlib_module_names and not m.name.startswith(skip))
    for name in names:
        try:
            mod = importlib.import_module(name)
        except Exception:
            continue
        docs = [inspect.getdoc(mod) or ""]
        for _, obj in sorted(vars(mod).items(), key=lambda kv: kv[0]):
            if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj):
                if getattr(obj, "__module__", None) == name:
                    docs.append(inspect.getdoc(obj) or "")
        for d in docs:
            groups.setdefault(f"stdlib:{name}", []).extend(doc_sentences(d))
    out = []
    for group in sorted(groups):
        sentences = sorted(set(groups[group]))
        sql_like = [s for s in sentences if SQL_WORDS.search(s)]
        other = [s for s in sentences if not SQL_WORDS.search(s)]
        rng.shuffle(sql_like)
        rng.shuffle(other)
        take = sql_like[: per_group] + other[: max(1, per_group // 4)]
        out.extend((group, s) for s in take)
    return out


# ---------------------------------------------------------------- main


def write(name, values, header):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(header)
        for v in values:
            f.write(v + "\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", help="download folder (default: a temporary one)")
    ap.add_argument("--sqlmap-dir", help="an unpacked sqlmap package (skip the download)")
    ap.add_argument("--wfuzz-sql", help="wfuzz's wordlist/Injections/SQL.txt (skip the download)")
    args = ap.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Some Faker providers pick from sets, whose order follows string hashing: fix it.
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    import faker

    if faker.VERSION != FAKER_VERSION:
        sys.exit(f"need Faker {FAKER_VERSION}, have {faker.VERSION}: values would differ")
    work = args.work or tempfile.mkdtemp(prefix="sqlguard-external-")
    sqlmap_dir = args.sqlmap_dir or fetch_sqlmap(work)
    wfuzz_sql = args.wfuzz_sql or fetch_wfuzz(work)

    rng = random.Random(SEED)
    attacks = sqlmap_attacks(sqlmap_dir, rng, per_test=14)
    attacks += tampered(attacks, sqlmap_dir, rng, share=0.35)
    attacks += wfuzz_attacks(wfuzz_sql)
    benign = faker_benign(rng, per_locale=300)
    benign += python_docs_benign(rng, per_group=12)

    os.makedirs(OUT, exist_ok=True)
    stats = {}
    for label, pairs in (("attacks", attacks), ("benign", benign)):
        seen = set()
        split = {"train": [], "held-out": []}
        for group, value in pairs:
            value = clean(value)
            if value is None or value in seen:
                continue
            seen.add(value)
            split["held-out" if held_out(group) else "train"].append(value)
        for part, values in split.items():
            header = (f"# SQLGuard external corpus, {label}, {part} split. Generated by "
                      f"sentinel/corpus-tools/external_corpus.py; sources and licences in "
                      f"README.md beside this file. One value per line.\n")
            write(f"{label}-{part}.txt", values, header)
            stats[f"{label}-{part}"] = len(values)
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
