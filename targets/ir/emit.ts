/** The `ir` target: the derived programs as readable text. */
import { gradientProgram } from '../../compiler/autodiff/gradient-program.ts';
import { printProgram } from '../../compiler/ir/print.ts';
import { stem, type Target } from '../target.ts';
import { commentText } from '../text.ts';

export const irTarget: Target = {
  name: 'ir',
  description: 'the per-token gradient program and the derived mini-batch program, as text',
  emit(compiled) {
    const forms = compiled.chunk.forms.map((f) => `#   ${f.state}: ${f.form}`).join('\n');
    const contents = [
      `# ${compiled.layer.name}: compiled from ${commentText(compiled.file)} by tttc`,
      `# mini-batch K = ${compiled.chunk.K}; form per state:`,
      forms,
      '',
      printProgram(gradientProgram(compiled.layer), 'gradient'),
      '',
      printProgram(compiled.chunk.program, 'minibatch'),
      '',
    ].join('\n');
    return [{ path: `${stem(compiled)}.ir.txt`, contents }];
  },
};
