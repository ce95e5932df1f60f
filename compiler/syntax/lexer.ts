/** The `.ttt` tokens. Newlines are whitespace: statements start with keywords, so they need no terminator. */
import { createToken, Lexer, type TokenType } from 'chevrotain';

export const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_]*/, label: 'a name' });

/** Every keyword of the language, in declaration order (editors highlight these). */
export const KEYWORDS: string[] = [];

function keyword(word: string): TokenType {
  KEYWORDS.push(word);
  return createToken({
    name: word[0]!.toUpperCase() + word.slice(1),
    pattern: new RegExp(word),
    longer_alt: Identifier,
    label: `'${word}'`,
  });
}

export const Layer = keyword('layer');
export const Dim = keyword('dim');
export const Minibatch = keyword('minibatch');
export const State = keyword('state');
export const Param = keyword('param');
export const Fn = keyword('fn');
export const Let = keyword('let');
export const Return = keyword('return');
export const Loss = keyword('loss');
export const Output = keyword('output');
export const Update = keyword('update');
export const F32 = keyword('f32');

export const NumberLiteral = createToken({
  name: 'NumberLiteral',
  pattern: /(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/,
  label: 'a number',
});

function punct(name: string, text: string): TokenType {
  return createToken({ name, pattern: text, label: `'${text}'` });
}

export const Arrow = punct('Arrow', '->');
export const LBrace = punct('LBrace', '{');
export const RBrace = punct('RBrace', '}');
export const LParen = punct('LParen', '(');
export const RParen = punct('RParen', ')');
export const LBracket = punct('LBracket', '[');
export const RBracket = punct('RBracket', ']');
export const Comma = punct('Comma', ',');
export const Colon = punct('Colon', ':');
export const Semicolon = punct('Semicolon', ';');
export const Equals = punct('Equals', '=');
export const Plus = punct('Plus', '+');
export const Minus = punct('Minus', '-');
export const Star = punct('Star', '*');
export const Slash = punct('Slash', '/');
export const At = punct('At', '@');

const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /\s+/, group: Lexer.SKIPPED });
const Comment = createToken({ name: 'Comment', pattern: /#[^\n]*/, group: Lexer.SKIPPED });

/** Order matters: keywords before `Identifier`, `->` before `-`. */
export const allTokens: TokenType[] = [
  WhiteSpace,
  Comment,
  Layer,
  Dim,
  Minibatch,
  State,
  Param,
  Fn,
  Let,
  Return,
  Loss,
  Output,
  Update,
  F32,
  Identifier,
  NumberLiteral,
  Arrow,
  LBrace,
  RBrace,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Comma,
  Colon,
  Semicolon,
  Equals,
  Plus,
  Minus,
  Star,
  Slash,
  At,
];

export const tttLexer = new Lexer(allTokens, { positionTracking: 'onlyOffset', ensureOptimizations: true });
