#!/usr/bin/env node
/**
 * The `kvstore` command. Bad flags print one line and exit 2 (DESIGN.md §6).
 */
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

/** Exit codes of every kvstore command (DESIGN.md §6). */
try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    const informational = ['commander.helpDisplayed', 'commander.version', 'commander.help'];
    process.exitCode = informational.includes(error.code) ? 0 : 2;
  } else {
    throw error;
  }
}
