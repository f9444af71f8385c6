// Drives a running MagGate with the real @supabase/postgrest-js client, as an application
// would. Usage: node postgrest.mjs <rest url> [postgres]. Exits non-zero on the first failed
// check; RPC checks run only when the second argument says the database is PostgreSQL.
import assert from 'node:assert/strict';
import { PostgrestClient } from '@supabase/postgrest-js';
import SwaggerParser from '@apidevtools/swagger-parser';

const url = process.argv[2];
const postgres = process.argv[3] === 'postgres';
const db = new PostgrestClient(url);
let checks = 0;
async function check(name, fn) {
  try {
    await fn();
    checks += 1;
    console.log(`ok   ${name}`);
  } catch (error) {
    console.error(`FAIL ${name}: ${error.stack ?? error}`);
    process.exit(1);
  }
}

await check('select with filter and order', async () => {
  const { data, error, status } = await db.from('books').select('id,title').gt('pages', 100).order('id');
  assert.equal(error, null);
  assert.equal(status, 200);
  assert.deepEqual(data, [
    { id: 1, title: 'Dune' },
    { id: 3, title: 'Emma' },
  ]);
});

await check('rename and in filter', async () => {
  const { data, error } = await db.from('books').select('name:title').in('id', [2, 3]).order('id');
  assert.equal(error, null);
  assert.deepEqual(data, [{ name: 'Anna' }, { name: 'Emma' }]);
});

await check('or filter and ilike', async () => {
  const { data, error } = await db.from('books').select('id').or('title.ilike.d*,pages.lt.100').order('id');
  assert.equal(error, null);
  assert.deepEqual(data.map((r) => r.id), [1, 2]);
});

await check('range with exact count', async () => {
  const { data, count, error, status } = await db
    .from('books')
    .select('id', { count: 'exact' })
    .order('id')
    .range(0, 1);
  assert.equal(error, null);
  assert.equal(status, 206);
  assert.equal(count, 3);
  assert.deepEqual(data.map((r) => r.id), [1, 2]);
});

await check('single row', async () => {
  const { data, error } = await db.from('books').select('title').eq('id', 1).single();
  assert.equal(error, null);
  assert.deepEqual(data, { title: 'Dune' });
});

await check('single fails on many rows', async () => {
  const { data, error, status } = await db.from('books').select('id').single();
  assert.equal(data, null);
  assert.equal(status, 406);
  assert.equal(error.code, 'PGRST116');
});

await check('embed a to-one relationship', async () => {
  const { data, error } = await db.from('books').select('title, authors(name)').eq('id', 1);
  assert.equal(error, null);
  assert.deepEqual(data, [{ title: 'Dune', authors: { name: 'Herbert' } }]);
});

await check('embed a to-many relationship with order inside', async () => {
  const { data, error } = await db
    .from('authors')
    .select('name, books(title)')
    .eq('id', 2)
    .order('title', { referencedTable: 'books' });
  assert.equal(error, null);
  assert.deepEqual(data, [{ name: 'Austen', books: [{ title: 'Anna' }, { title: 'Emma' }] }]);
});

await check('inner embed filters parents', async () => {
  const { data, error } = await db
    .from('books')
    .select('id, authors!inner(name)')
    .eq('authors.name', 'Austen')
    .order('id');
  assert.equal(error, null);
  assert.deepEqual(data.map((r) => r.id), [2, 3]);
});

await check('upsert merges an existing row (200)', async () => {
  const { data, error, status } = await db
    .from('books')
    .upsert({ id: 1, title: 'Dune', pages: 500, author_id: 1 })
    .select('id,pages');
  assert.equal(error, null);
  assert.equal(status, 200);
  assert.deepEqual(data, [{ id: 1, pages: 500 }]);
});

if (postgres) {
  await check('rpc returning table rows, with a filter', async () => {
    const { data, error } = await db.rpc('books_longer_than', { min_pages: 100 }).select('title').order('id');
    assert.equal(error, null);
    assert.deepEqual(data, [{ title: 'Dune' }, { title: 'Emma' }]);
  });
  await check('rpc returning a scalar', async () => {
    const { data, error } = await db.rpc('add', { a: 2, b: 3 });
    assert.equal(error, null);
    assert.equal(data, 5);
  });
}

await check('insert returning the row', async () => {
  const { data, error, status } = await db
    .from('books')
    .insert({ id: 4, title: 'Kim', pages: 300, author_id: 1 })
    .select('id,title,pages');
  assert.equal(error, null);
  assert.equal(status, 201);
  assert.deepEqual(data, [{ id: 4, title: 'Kim', pages: 300 }]);
});

await check('insert and delete returning the row with an embedded resource', async () => {
  const { data, error, status } = await db
    .from('books')
    .insert({ id: 7, title: 'Persuasion', pages: 250, author_id: 2 })
    .select('*, authors(name)');
  assert.equal(error, null);
  assert.equal(status, 201);
  assert.deepEqual(data, [
    { id: 7, title: 'Persuasion', pages: 250, author_id: 2, authors: { name: 'Austen' } },
  ]);
  const removed = await db.from('books').delete().eq('id', 7).select('id, writer:authors(name)');
  assert.equal(removed.error, null);
  assert.deepEqual(removed.data, [{ id: 7, writer: { name: 'Austen' } }]);
});

await check('bulk insert without returning', async () => {
  const { error, status } = await db.from('books').insert([
    { id: 5, title: 'Nana', pages: 90 },
    { id: 6, title: 'Ulysses', pages: 700 },
  ]);
  assert.equal(error, null);
  assert.equal(status, 201);
});

await check('update with filter', async () => {
  const { data, error } = await db.from('books').update({ pages: 301 }).eq('id', 4).select('id,pages');
  assert.equal(error, null);
  assert.deepEqual(data, [{ id: 4, pages: 301 }]);
});

await check('delete with filter', async () => {
  const { error, status } = await db.from('books').delete().eq('id', 6);
  assert.equal(error, null);
  assert.equal(status, 204);
  const { count } = await db.from('books').select('id', { count: 'exact', head: true });
  assert.equal(count, 5);
});

await check('unique violation is a 409 with the SQLSTATE', async () => {
  const { error, status } = await db.from('books').insert({ id: 1, title: 'Again', pages: 1 });
  assert.equal(status, 409);
  assert.equal(error.code, '23505');
});

await check('unknown column is a 400 with a hint', async () => {
  const { error, status } = await db.from('books').select('titel');
  assert.equal(status, 400);
  assert.equal(error.code, '42703');
  assert.match(error.hint ?? '', /title/);
});

await check('unknown table is a 404', async () => {
  const { error, status } = await db.from('nope').select('*');
  assert.equal(status, 404);
  assert.equal(error.code, 'PGRST205');
});

await check('the root serves a valid OpenAPI 3.1 document', async () => {
  const response = await fetch(`${url}/`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^application\/openapi\+json/);
  const doc = await response.json();
  await SwaggerParser.validate(structuredClone(doc));
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/books'].get && doc.paths['/authors'].post);
  if (postgres) assert.ok(doc.paths['/rpc/add'].post);
});

console.log(`${checks} passed, 0 failed`);
