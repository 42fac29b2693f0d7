// The JavaScript twin of pagedllm-tokenizer-bench: @huggingface/tokenizers on the same corpus
// with the same timing method (untimed warm-up over the first 5% of the documents, then one
// timed pass over all of them, add_special_tokens=false), single thread.
//   node tools/tokenizer_bench/bench.mjs MODEL_DIR CORPUS_JSON
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const library = path.resolve(here, '../../tests/text/tokenizer/oracle/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs');
if (!fs.existsSync(library)) {
  console.error('missing @huggingface/tokenizers; run: npm ci --prefix tests/text/tokenizer/oracle');
  process.exit(3);
}
const { Tokenizer } = await import(pathToFileURL(library).href);
const [modelDir, corpusPath] = process.argv.slice(2);
if (!modelDir || !corpusPath) {
  console.error('usage: node bench.mjs MODEL_DIR CORPUS_JSON');
  process.exit(2);
}
const docs = JSON.parse(fs.readFileSync(corpusPath, 'utf8'));
const encoder = new TextEncoder();
let bytes = 0;
for (const doc of docs) bytes += encoder.encode(doc).length;

const loadStart = performance.now();
const readJson = (name) => JSON.parse(fs.readFileSync(path.join(modelDir, name), 'utf8'));
const configPath = path.join(modelDir, 'tokenizer_config.json');
const tokenizer = new Tokenizer(readJson('tokenizer.json'),
  fs.existsSync(configPath) ? readJson('tokenizer_config.json') : {});
const loadSeconds = (performance.now() - loadStart) / 1000;

for (let i = 0; i < Math.floor(docs.length / 20); ++i) tokenizer.encode(docs[i], { add_special_tokens: false });
let tokens = 0;
const start = performance.now();
for (const doc of docs) tokens += tokenizer.encode(doc, { add_special_tokens: false }).ids.length;
const seconds = (performance.now() - start) / 1000;
console.log(JSON.stringify({
  impl: '@huggingface/tokenizers (node)', model_dir: modelDir, docs: docs.length, bytes, tokens,
  seconds: Number(seconds.toFixed(3)), encode_mb_per_s: Number((bytes / seconds / 1e6).toFixed(2)),
  load_seconds: Number(loadSeconds.toFixed(2)),
}));
