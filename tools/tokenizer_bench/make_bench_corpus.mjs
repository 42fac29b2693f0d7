// Writes the benchmark corpus: node tools/tokenizer_bench/make_bench_corpus.mjs OUT.json [MB]
// (documents of mixed prose, code, numbers, CJK, emoji, ... from the test corpus generator).
import fs from 'node:fs';
import { makeBenchText } from '../../tests/text/tokenizer/oracle/corpus.mjs';

const [out, mb = '20'] = process.argv.slice(2);
if (!out) {
  console.error('usage: node make_bench_corpus.mjs OUT.json [MB]');
  process.exit(2);
}
fs.writeFileSync(out, JSON.stringify(makeBenchText({ bytes: Number(mb) * (1 << 20) })));
