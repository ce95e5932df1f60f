/**
 * The `.ttt` grammar as a chevrotain CstParser with error recovery, so one run reports several
 * syntax errors. Labels name the CST children that `to-ast.ts` reads.
 */
import { CstParser, EOF, type IParserErrorMessageProvider, type IToken, type TokenType } from 'chevrotain';
import * as T from './lexer.ts';

class TttParser extends CstParser {
  constructor() {
    super(T.allTokens, { recoveryEnabled: true, errorMessageProvider: messages });
    this.performSelfAnalysis();
  }

  file = this.RULE('file', () => {
    this.SUBRULE(this.layer);
  });

  layer = this.RULE('layer', () => {
    this.CONSUME(T.Layer);
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.CONSUME(T.LBrace);
    this.MANY(() => {
      this.OR({
        DEF: [{ ALT: () => this.SUBRULE(this.member) }, { ALT: () => this.CONSUME(T.Semicolon) }],
        ERR_MSG: 'a declaration (dim, minibatch, state, param, fn, loss, output, update)',
      });
    });
    this.CONSUME(T.RBrace);
  });

  member = this.RULE('member', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.dimDecl) },
      { ALT: () => this.SUBRULE(this.tensorDecl) },
      { ALT: () => this.SUBRULE(this.fnDecl) },
      { ALT: () => this.SUBRULE(this.viewFnDecl) },
      { ALT: () => this.SUBRULE(this.updateDecl) },
    ]);
  });

  /** `dim N = e` and `minibatch K = e`. */
  dimDecl = this.RULE('dimDecl', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Dim, { LABEL: 'keyword' }) },
      { ALT: () => this.CONSUME(T.Minibatch, { LABEL: 'keyword' }) },
    ]);
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.CONSUME(T.Equals);
    this.SUBRULE(this.expression, { LABEL: 'value' });
  });

  /** `state N: [dims]` and `param N: [dims]`. */
  tensorDecl = this.RULE('tensorDecl', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.State, { LABEL: 'keyword' }) },
      { ALT: () => this.CONSUME(T.Param, { LABEL: 'keyword' }) },
    ]);
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.CONSUME(T.Colon);
    this.SUBRULE(this.typeExpr, { LABEL: 'type' });
  });

  fnDecl = this.RULE('fnDecl', () => {
    this.CONSUME(T.Fn, { LABEL: 'keyword' });
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.SUBRULE(this.paramList, { LABEL: 'params' });
    this.OPTION(() => {
      this.CONSUME(T.Arrow);
      this.SUBRULE(this.typeExpr, { LABEL: 'returnType' });
    });
    this.SUBRULE(this.body);
  });

  /** `loss(views) body` and `output(views) body`. */
  viewFnDecl = this.RULE('viewFnDecl', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Loss, { LABEL: 'keyword' }) },
      { ALT: () => this.CONSUME(T.Output, { LABEL: 'keyword' }) },
    ]);
    this.SUBRULE(this.paramList, { LABEL: 'params' });
    this.SUBRULE(this.body);
  });

  updateDecl = this.RULE('updateDecl', () => {
    this.CONSUME(T.Update, { LABEL: 'keyword' });
    this.CONSUME(T.Identifier, { LABEL: 'rule' });
    this.CONSUME(T.LParen);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.updateArg, { LABEL: 'args' }) });
    this.CONSUME(T.RParen);
    this.OPTION(() => {
      this.CONSUME(T.LBrace, { LABEL: 'open' });
      this.MANY(() => {
        this.OR([
          { ALT: () => this.SUBRULE(this.updateStmt, { LABEL: 'stmts' }) },
          { ALT: () => this.CONSUME(T.Semicolon) },
        ]);
      });
      this.CONSUME(T.RBrace, { LABEL: 'close' });
    });
  });

  /** `lr W1: token`, `commit W1 = e`, `orthogonalize W1(steps: 5)`: a verb, a state, then its form. */
  updateStmt = this.RULE('updateStmt', () => {
    this.CONSUME(T.Identifier, { LABEL: 'verb' });
    this.CONSUME2(T.Identifier, { LABEL: 'target' });
    this.OPTION(() => {
      this.OR([
        {
          ALT: () => {
            this.CONSUME(T.Colon);
            this.OR2([
              { ALT: () => this.CONSUME3(T.Identifier, { LABEL: 'value' }) },
              { ALT: () => this.CONSUME(T.NumberLiteral, { LABEL: 'value' }) },
            ]);
          },
        },
        {
          ALT: () => {
            this.CONSUME(T.Equals);
            this.SUBRULE(this.expression, { LABEL: 'expr' });
          },
        },
        {
          ALT: () => {
            this.CONSUME(T.LParen);
            this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.updateArg, { LABEL: 'args' }) });
            this.CONSUME(T.RParen, { LABEL: 'close' });
          },
        },
      ]);
    });
  });

  /** `lr: token`, `scale: 0.5`: the value is a word or a number, interpreted by `to-ast.ts`. */
  updateArg = this.RULE('updateArg', () => {
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.CONSUME(T.Colon);
    this.OR({
      DEF: [
        { ALT: () => this.CONSUME2(T.Identifier, { LABEL: 'value' }) },
        { ALT: () => this.CONSUME(T.NumberLiteral, { LABEL: 'value' }) },
      ],
      ERR_MSG: 'a word or a number',
    });
  });

  paramList = this.RULE('paramList', () => {
    this.CONSUME(T.LParen);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.param, { LABEL: 'params' }) });
    this.CONSUME(T.RParen);
  });

  param = this.RULE('param', () => {
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.CONSUME(T.Colon);
    this.SUBRULE(this.typeExpr, { LABEL: 'type' });
  });

  /** `[D, H]`, `[]` or `f32` (a scalar). */
  typeExpr = this.RULE('typeExpr', () => {
    this.OR({
      DEF: [
        {
          ALT: () => {
            this.CONSUME(T.LBracket, { LABEL: 'open' });
            this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.expression, { LABEL: 'dims' }) });
            this.CONSUME(T.RBracket, { LABEL: 'close' });
          },
        },
        { ALT: () => this.CONSUME(T.F32, { LABEL: 'open' }) },
      ],
      ERR_MSG: 'a type such as [D], [D, H] or f32',
    });
  });

  /** `= e` or `{ let x = e ... return e }`; `;` may separate statements. */
  body = this.RULE('body', () => {
    this.OR({
      DEF: [
        {
          ALT: () => {
            this.CONSUME(T.Equals, { LABEL: 'open' });
            this.SUBRULE(this.expression, { LABEL: 'result' });
          },
        },
        {
          ALT: () => {
            this.CONSUME(T.LBrace, { LABEL: 'open' });
            this.MANY(() => {
              this.OR2([
                { ALT: () => this.SUBRULE(this.letStmt, { LABEL: 'lets' }) },
                { ALT: () => this.CONSUME(T.Semicolon) },
              ]);
            });
            this.CONSUME(T.Return);
            this.SUBRULE2(this.expression, { LABEL: 'result' });
            this.OPTION(() => this.CONSUME2(T.Semicolon));
            this.CONSUME(T.RBrace, { LABEL: 'close' });
          },
        },
      ],
      ERR_MSG: "'= expression' or '{ ... return expression }'",
    });
  });

  letStmt = this.RULE('letStmt', () => {
    this.CONSUME(T.Let, { LABEL: 'keyword' });
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.CONSUME(T.Equals);
    this.SUBRULE(this.expression, { LABEL: 'value' });
  });

  expression = this.RULE('expression', () => {
    this.SUBRULE(this.product, { LABEL: 'operands' });
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(T.Plus, { LABEL: 'operators' }) },
        { ALT: () => this.CONSUME(T.Minus, { LABEL: 'operators' }) },
      ]);
      this.SUBRULE2(this.product, { LABEL: 'operands' });
    });
  });

  /** `*`, `/` and `@` share one level, left-associative. */
  product = this.RULE('product', () => {
    this.SUBRULE(this.unary, { LABEL: 'operands' });
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(T.Star, { LABEL: 'operators' }) },
        { ALT: () => this.CONSUME(T.Slash, { LABEL: 'operators' }) },
        { ALT: () => this.CONSUME(T.At, { LABEL: 'operators' }) },
      ]);
      this.SUBRULE2(this.unary, { LABEL: 'operands' });
    });
  });

  unary = this.RULE('unary', () => {
    this.OR({
      DEF: [
        {
          ALT: () => {
            this.CONSUME(T.Minus, { LABEL: 'minus' });
            this.SUBRULE(this.unary, { LABEL: 'operand' });
          },
        },
        { ALT: () => this.SUBRULE(this.primary, { LABEL: 'operand' }) },
      ],
      ERR_MSG: 'an expression',
    });
  });

  primary = this.RULE('primary', () => {
    this.OR({
      DEF: [
        { ALT: () => this.CONSUME(T.NumberLiteral, { LABEL: 'number' }) },
        {
          ALT: () => {
            this.CONSUME(T.Identifier, { LABEL: 'name' });
            this.OPTION(() => this.SUBRULE(this.argList, { LABEL: 'call' }));
          },
        },
        {
          ALT: () => {
            this.CONSUME(T.LParen, { LABEL: 'open' });
            this.SUBRULE(this.expression, { LABEL: 'inner' });
            this.CONSUME(T.RParen, { LABEL: 'close' });
          },
        },
      ],
      ERR_MSG: 'an expression',
    });
  });

  argList = this.RULE('argList', () => {
    this.CONSUME(T.LParen);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.arg, { LABEL: 'args' }) });
    this.CONSUME(T.RParen, { LABEL: 'close' });
  });

  /** `e` or `name: e`; two tokens of lookahead tell them apart. */
  arg = this.RULE('arg', () => {
    this.OPTION(() => {
      this.CONSUME(T.Identifier, { LABEL: 'name' });
      this.CONSUME(T.Colon);
    });
    this.SUBRULE(this.expression, { LABEL: 'value' });
  });
}

/** `'}'`, `the name 'x'`, `the end of the file`. */
function describeToken(token: IToken): string {
  if (token.tokenType === EOF) return 'the end of the file';
  if (token.tokenType === T.Identifier) return `the name '${token.image}'`;
  if (token.tokenType === T.NumberLiteral) return `the number ${token.image}`;
  return `'${token.image}'`;
}

function label(type: TokenType): string {
  return type.LABEL ?? type.name;
}

/** Lists the distinct first tokens of the expected paths: `'=' or '{'`. */
function firstTokens(paths: TokenType[][]): string {
  const labels = [...new Set(paths.flatMap((path) => (path[0] ? [label(path[0])] : [])))];
  return labels.length <= 1 ? (labels[0] ?? 'something else') : `${labels.slice(0, -1).join(', ')} or ${labels.at(-1)}`;
}

const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage: ({ expected, actual }) => `expected ${label(expected)} but found ${describeToken(actual)}`,
  buildNotAllInputParsedMessage: ({ firstRedundant }) =>
    `expected the end of the file after the layer but found ${describeToken(firstRedundant)}`,
  buildNoViableAltMessage: ({ expectedPathsPerAlt, actual, customUserDescription }) =>
    `expected ${customUserDescription ?? firstTokens(expectedPathsPerAlt.flat())} but found ${describeToken(actual[0]!)}`,
  buildEarlyExitMessage: ({ expectedIterationPaths, actual, customUserDescription }) =>
    `expected ${customUserDescription ?? firstTokens(expectedIterationPaths)} but found ${describeToken(actual[0]!)}`,
};

let parser: TttParser | undefined;

/** One parser instance, built on first use and reused: building it (grammar analysis) costs more than a parse. */
export function tttParser(): TttParser {
  return (parser ??= new TttParser());
}
