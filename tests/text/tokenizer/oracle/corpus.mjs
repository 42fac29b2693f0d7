// Deterministic test corpus for the tokenizer: hand-picked edge cases plus seeded random mixes of
// prose, code, numbers, whitespace runs, contractions, CJK, RTL, emoji (ZWJ sequences, skin
// tones, flags), combining marks and NFC/NFD pairs, special-token strings and long words.
// Only characters assigned since Unicode 13 or earlier, so every engine's tables agree.
//
//   makeCorpus({count, seed}) -> string[]          (the oracle test: count ~3000)
//   makeBenchText({bytes, seed}) -> string[]       (the benchmark: documents totalling `bytes`)

const SPECIAL_STRINGS = [
  '<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>',
  '<|reserved_special_token_5|>', '<s>', '</s>', '<unk>', '<|im_start|>', '<|im_end|>',
  '<|endoftext|>', '<think>', '</think>', '<tool_call>', '<|fim_prefix|>', '<|bos|>', '<|eos|>',
  '<|pad|>', '<0x41>', '<|', '|>', '<s', '< s>',
];

const WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or ' +
  'one had by word but not what all were we when your can said there use an each which she do ' +
  'how their if will up other about out many then them these so some her would make like him ' +
  'into time has look two more write go see number no way could people my than first water ' +
  'been call who oil its now find long down day did get come made may part tokenizer ' +
  'transformer attention paged kernel latency throughput scheduler preemption batch ' +
  'internationalization antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis ' +
  'Hello World HELLO camelCase snake_case kebab-case PascalCase SCREAMING_CASE iPhone McDonald'
).split(' ');

const CONTRACTIONS = [
  "it's", "It'S", "we're", "WE'RE", "they've", "I'm", "I'M", "you'll", "YOU'LL", "he'd", "don't",
  "can't", "won't", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "rock'n'roll", "o'clock",
  "’s", "ſ's", "'S", "''", "' s", "l'homme", "dell'acqua",
];

const NUMBERS = [
  '0', '7', '42', '123', '1234', '12345', '123456789', '3.14159', '1,000,000', '-17', '+3e-7',
  '0xDEADBEEF', '2024-01-31', '12:34:56', '100%', '$9.99', '€5', '1/2', '١٢٣', '०१२३', '１２３',
  '½', '²', 'Ⅻ', '⑦', '𝟙𝟚𝟛', '0000000000000000', '9'.repeat(40),
];

const CJK = [
  '你好，世界！', '我们今天去公园散步。', '机器学习', '東京都', 'こんにちは世界', 'カタカナ', 'ひらがな',
  '안녕하세요', '한국어 텍스트', '中文和English混合', '「引用」', '〜', '，。！？', '漢字とかな',
];

const RTL = [
  'مرحبا بالعالم', 'العربية', 'שלום עולם', 'עברית', 'سلام دنیا', 'اردو زبان',
  'abc مرحبا def', '\u200Fמימין\u200E',
];

const OTHER_SCRIPTS = [
  'Привет, мир!', 'Ελληνικά', 'नमस्ते दुनिया', 'हिन्दी', 'สวัสดีชาวโลก', 'ภาษาไทย', 'გამარჯობა',
  'Հայերեն', 'ሰላም', 'ᚠᚢᚦ', 'Ærøskøbing', 'Straße', 'İstanbul', 'ǅemal', 'Ꭰ', 'ⴰⵣⵓⵍ',
  'tiếng Việt', 'Việt Nam', 'ꦗꦮ', '𐌰𐌱𐌲', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𝐁𝐨𝐥𝐝',
];

const EMOJI = [
  '😀', '😂', '🤖', '👍', '👍🏽', '👋🏿', '👨‍👩‍👧‍👦', '👩‍💻', '🏳️‍🌈', '🇺🇸', '🇯🇵🇫🇷', '❤️', '✨', '🔥🔥🔥',
  '1️⃣', '#️⃣', '🧑🏻‍🤝‍🧑🏿', '☕', '⌚', '©', '™', '↔', '∑∫√∞', '★☆', '♥',
];

// The same text in NFC and in NFD (and some compatibility forms).
const NORMALIZATION = [
  'é', 'e\u0301', 'café', 'cafe\u0301', 'Å', 'A\u030A', '\u212B', 'ñ', 'n\u0303', 'Ω', '\u2126',
  'ﬁ', 'ﬀ', '①', 'ẛ̣', 's\u0323\u0307', 'ḍ̇', 'd\u0323\u0307', 'd\u0307\u0323', '한', '\u1112\u1161\u11AB',
  '\u1100\u1161', 'ü', 'u\u0308', 'Ǖ', 'U\u0308\u0304', 'q\u0307\u0323', 'x\u0300\u0301\u0302',
  'a\u0328\u0301', 'ą\u0301', 'Ệ', 'E\u0323\u0302', '\u0F73', '\u0344', 'ｶ', 'ｶﾞ',
  '\u09C7\u09BE', '\u09CB', '\u0CBF\u0CD5', '\u0B47\u0B3E', '\u0DD9\u0DCF', 'が', 'か\u3099',
];

const WHITESPACE = [
  ' ', '  ', '   ', '    ', '        ', '\t', '\t\t', '\n', '\n\n', '\n\n\n', '\r\n', '\r\n\r\n',
  ' \n', '\n ', ' \t ', '\u00A0', '\u3000', '\u2003', '\u200B', '\u2028', '\u0085', '\uFEFF',
  '\v', '\f', '\r', ' \r\n ', '\t\n\t',
];

const PUNCT = ['.', ',', '!', '?', ';', ':', '...', '—', '–', '-', '(', ')', '[', ']', '{', '}',
  '"', "'", '`', '«', '»', '“', '”', '‘', '’', '/', '\\', '|', '@', '#', '$', '%', '^', '&', '*',
  '_', '=', '+', '~', '<', '>', '·', '•', '¿', '¡', '§', '¶', '†', '‰'];

const CODE = [
  'def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n',
  'import os\n\n\ndef main() -> None:\n    print(os.getcwd())\n',
  'class Stack:\n    def __init__(self):\n        self.items = []\n',
  '#include <vector>\n\nint main(int argc, char** argv) {\n  std::vector<int> v{1, 2, 3};\n  return v.size() > 2 ? 0 : 1;\n}\n',
  'template <typename T>\nT Max(const T& a, const T& b) { return a < b ? b : a; }',
  'const add = (a, b) => a + b;\nconsole.log(`sum: ${add(1, 2)}`);\n',
  'fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!("{:?}", v);\n}\n',
  'func Handler(w http.ResponseWriter, r *http.Request) {\n\tfmt.Fprintf(w, "ok")\n}\n',
  'SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;',
  '<!DOCTYPE html>\n<html>\n  <body class="main">&nbsp;&lt;p&gt;</body>\n</html>',
  '{"key": "value", "list": [1, 2.5, null, true], "nested": {"a": "\\u00e9"}}',
  'if (x != nullptr && *x == 0x7f) { --count; x->next = nullptr; }',
  '    return self._cache[key]  # TODO(someone): evict\n',
  '\t\tcase 3:\r\n\t\t\tbreak;\r\n',
  'x <<= 2; y >>>= 1; z **= 3; a ?? b; c?.d; e !== f',
  '$ ls -la | grep -v "^d" | awk \'{print $9}\' > out.txt 2>&1',
  'https://example.com/path/to/page?query=1&lang=en#section-2',
  'user@example.org',
  '/usr/local/lib/python3.11/site-packages/torch/__init__.py',
  'SGVsbG8gV29ybGQhIFRoaXMgaXMgYmFzZTY0IGVuY29kZWQgdGV4dC4=',
  'a1b2c3d4e5f6g7h8i9j0',
  '\\begin{equation} E = mc^2 \\end{equation}',
  '# Title\n\n- item one\n- item two\n\n```python\nprint("hi")\n```\n',
  '| col1 | col2 |\n|------|------|\n| a    | b    |',
];

const PROSE = [
  'The quick brown fox jumps over the lazy dog.',
  'It was the best of times, it was the worst of times.',
  "She said, \"I'll be there at 5 o'clock,\" and then she left.",
  'In 1969, Neil Armstrong became the first person to walk on the Moon.',
  'PagedAttention stores the KV cache in fixed-size blocks, like virtual memory pages.',
  "Don't panic!  Everything's fine... isn't it?",
  'Mr. Smith paid $1,234.56 for 3 items on 2023-07-04.',
  'WHY ARE YOU SHOUTING?!?',
  'Ünïcödé text with àccénts and ligatures: æ œ ß.',
  'Question : is this , spaced oddly ? Yes !',
  "He said ' hello ' to them , and they 're happy .",
  "I 'm sure you 've seen it ; it 's n't there .",
];

// A small seeded PRNG (mulberry32): the corpus and the oracle's random id sequences.
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Code point ranges for random characters: all assigned since Unicode 6 or earlier.
const RANGES = [
  [0x20, 0x7E], [0xA0, 0x17F], [0x300, 0x36F], [0x391, 0x3C9], [0x410, 0x44F], [0x5D0, 0x5EA],
  [0x627, 0x64A], [0x660, 0x669], [0x905, 0x939], [0xE01, 0xE30], [0x1100, 0x1112],
  [0x1161, 0x1175], [0x11A8, 0x11C2], [0x2000, 0x200A], [0x2010, 0x2027], [0x2190, 0x21FF],
  [0x2200, 0x22FF], [0x3041, 0x3096], [0x30A1, 0x30FA], [0x4E00, 0x9FA5], [0xAC00, 0xD7A3],
  [0xFF01, 0xFF5E], [0x1F300, 0x1F5FF], [0x1F600, 0x1F64F], [0x1F3FB, 0x1F3FF],
];

function randomCodePoints(rng, n) {
  let s = '';
  for (let i = 0; i < n; ++i) {
    const [lo, hi] = RANGES[Math.floor(rng() * RANGES.length)];
    s += String.fromCodePoint(lo + Math.floor(rng() * (hi - lo + 1)));
  }
  return s;
}

function pick(rng, list) {
  return list[Math.floor(rng() * list.length)];
}

const POOLS = [WORDS, WORDS, WORDS, CONTRACTIONS, NUMBERS, CJK, RTL, OTHER_SCRIPTS, EMOJI,
  NORMALIZATION, PUNCT, SPECIAL_STRINGS, PROSE, CODE];
const SEPARATORS = [' ', ' ', ' ', ' ', '', '', '\n', '\t', '  ', '\r\n', ', ', '. ', '\n\n',
  '   ', ' \n'];

function randomMix(rng) {
  const parts = 1 + Math.floor(rng() * 10);
  let s = '';
  if (rng() < 0.15) s += pick(rng, WHITESPACE);
  for (let i = 0; i < parts; ++i) {
    if (i > 0) s += rng() < 0.1 ? pick(rng, WHITESPACE) : pick(rng, SEPARATORS);
    const r = rng();
    if (r < 0.06) {
      s += randomCodePoints(rng, 1 + Math.floor(rng() * 12));
    } else if (r < 0.08) {
      const w = pick(rng, WORDS);
      s += w.repeat(1 + Math.floor(rng() * 8));
    } else {
      s += pick(rng, pick(rng, POOLS));
    }
  }
  if (rng() < 0.15) s += pick(rng, WHITESPACE);
  return s;
}

function edgeCases() {
  const cases = ['', ' ', 'a', 'Hello world', 'hello  world', ' leading space', 'trailing space ',
    '  two leading', 'trailing two  ', '\ttab\tseparated\t', 'line1\nline2\r\nline3\rline4',
    'x'.repeat(5000), 'ab'.repeat(1500), 'Supercalifragilisticexpialidocious'.repeat(40),
    '😀'.repeat(300), '한'.repeat(400), '.'.repeat(1000), ' '.repeat(700) + 'x', '\n'.repeat(300),
    '1234567890'.repeat(50), 'é'.repeat(200), 'e\u0301'.repeat(200),
    '<|begin_of_text|>Hello<|end_of_text|>', '<s>[INST] hi [/INST]</s>',
    '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n',
    '<think>\nreasoning\n</think>\n\nanswer', '<|bos|>prompt<|eos|>', ' <s> spaced </s> ',
    '<s><s></s></s>', '<|im_start|><|im_end|>', 'text<unk>text', '\uFEFFbom at start',
    'mixed\u0085next', 'nbsp\u00A0here', 'ideographic\u3000space', 'zero\u200Bwidth',
    'e\u0301\u0301\u0301', '\u0301starts with a mark', 'a\u200Db', '\u{1F468}\u200D',
  ];
  for (const list of [CONTRACTIONS, NUMBERS, CJK, RTL, OTHER_SCRIPTS, EMOJI, NORMALIZATION,
    WHITESPACE, PUNCT, SPECIAL_STRINGS, CODE, PROSE]) {
    for (const s of list) {
      cases.push(s, ' ' + s, s + ' ', 'x' + s + 'y', s + s);
    }
  }
  return cases;
}

export function makeCorpus({ count = 3000, seed = 20240531 } = {}) {
  const rng = mulberry32(seed);
  const corpus = edgeCases();
  while (corpus.length < count) corpus.push(randomMix(rng));
  return corpus;
}

// Documents of ordinary-looking mixed text for throughput measurements.
export function makeBenchText({ bytes = 20 << 20, seed = 7 } = {}) {
  const rng = mulberry32(seed);
  const docs = [];
  let total = 0;
  const encoder = new TextEncoder();
  while (total < bytes) {
    let doc = '';
    const n = 20 + Math.floor(rng() * 60);
    for (let i = 0; i < n; ++i) {
      doc += (i > 0 ? pick(rng, SEPARATORS) : '') + randomMix(rng);
    }
    total += encoder.encode(doc).length;
    docs.push(doc);
  }
  return docs;
}
