// The few Node globals examples/chat.ts uses (the build has no @types/node).
declare const process: {
  argv: string[];
  exit(code?: number): never;
  stdin: { setEncoding(e: string): void; on(event: "data", listener: (chunk: string) => void): void };
};
