import { describe, expect, it } from 'vitest';
import { AgentSmtpError } from './agent-smtp-error.js';
import { ConfigError } from './config-error.js';
import { SmtpError } from './smtp-error.js';
import { TemplateError } from './template-error.js';
import { ValidationError } from './validation-error.js';

const CLASSES = { AgentSmtpError, ConfigError, SmtpError, TemplateError, ValidationError } as const;
type ClassName = keyof typeof CLASSES;
const SUBCLASSES = ['ConfigError', 'SmtpError', 'TemplateError', 'ValidationError'] as const;

const instances: Record<ClassName, AgentSmtpError> = {
  AgentSmtpError: new AgentSmtpError('NOT_FOUND', 'x'),
  ConfigError: new ConfigError('x', { setting: 'SMTP_HOST' }),
  SmtpError: new SmtpError('SMTP_REJECTED', 'x'),
  TemplateError: new TemplateError('x'),
  ValidationError: ValidationError.of('to', 'x'),
};

/**
 * What another copy of the package (a second install of @agent-smtp/core in one process) makes: none of our classes,
 * only the markers its own classes set, which `Symbol.for` makes the same symbols as ours.
 */
function fromAnotherCopy(name: ClassName): object {
  const markers = name === 'AgentSmtpError' ? ['agent-smtp.error'] : ['agent-smtp.error', `agent-smtp.error.${name}`];
  return Object.assign(new Error('from another copy'), Object.fromEntries(markers.map((m) => [Symbol.for(m), true])));
}

describe('error markers', () => {
  it('AgentSmtpError.isInstance is true for every class; each subclass’s isInstance only for its own', () => {
    for (const [name, error] of Object.entries(instances) as [ClassName, AgentSmtpError][]) {
      expect(AgentSmtpError.isInstance(error), name).toBe(true);
      for (const other of SUBCLASSES) expect(CLASSES[other].isInstance(error), `${other}.isInstance(new ${name})`).toBe(other === name);
    }
    expect(SmtpError.isInstance(new TemplateError('x'))).toBe(false);
  });

  it('holds across two copies of the module: the marker decides, not the class', () => {
    for (const name of Object.keys(CLASSES) as ClassName[]) {
      const foreign = fromAnotherCopy(name);
      expect(foreign instanceof CLASSES[name], name).toBe(false);
      expect(AgentSmtpError.isInstance(foreign), name).toBe(true);
      for (const other of SUBCLASSES) expect(CLASSES[other].isInstance(foreign), `${other}.isInstance(${name} of another copy)`).toBe(other === name);
    }
    // The case the old shared marker got wrong: another copy's TemplateError passed for an SmtpError.
    expect(SmtpError.isInstance(fromAnotherCopy('TemplateError'))).toBe(false);
  });

  it('refuses look-alikes: no marker, a marker that is not true, primitives', () => {
    const lookAlikes: unknown[] = [
      null,
      undefined,
      'SmtpError',
      42,
      { code: 'SMTP_REJECTED', name: 'SmtpError' },
      new Error('plain'),
      { [Symbol.for('agent-smtp.error.SmtpError')]: 'true' },
      { [Symbol.for('agent-smtp.error')]: 1 },
    ];
    for (const value of lookAlikes) {
      for (const name of Object.keys(CLASSES) as ClassName[]) expect(CLASSES[name].isInstance(value), `${name}.isInstance(${String(value)})`).toBe(false);
    }
  });
});
