/** Indented source lines. */
export class Lines {
  private readonly out: string[] = [];
  private depth = 0;

  line(...texts: string[]): this {
    for (const t of texts) this.out.push(t === '' ? '' : '  '.repeat(this.depth) + t);
    return this;
  }

  /** `header {`, or a bare `{` without a header. */
  open(header: string): this {
    this.line(header === '' ? '{' : `${header} {`);
    this.depth++;
    return this;
  }

  close(trailer = ''): this {
    this.depth--;
    return this.line(`}${trailer}`);
  }

  toString(): string {
    return this.out.join('\n') + '\n';
  }
}
