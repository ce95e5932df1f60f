/** Walks over expressions without recursion, so a spec's depth cannot overflow the stack. */
import type { Expr } from './ast.ts';

/** The direct subexpressions of an expression, in source order. */
export function children(e: Expr): Expr[] {
  switch (e.kind) {
    case 'number':
    case 'name':
      return [];
    case 'negate':
      return [e.operand];
    case 'binary':
      return [e.left, e.right];
    case 'call':
      return [...e.args, ...e.named.map((n) => n.value)];
  }
}

/** Calls `visit` on every node of `root` after its children (post-order), left to right. */
export function postorder(root: Expr, visit: (e: Expr) => void): void {
  const stack: { e: Expr; expanded: boolean }[] = [{ e: root, expanded: false }];
  while (stack.length) {
    const top = stack.pop()!;
    if (top.expanded) {
      visit(top.e);
      continue;
    }
    stack.push({ e: top.e, expanded: true });
    const kids = children(top.e);
    for (let i = kids.length - 1; i >= 0; i--) stack.push({ e: kids[i], expanded: false });
  }
}
