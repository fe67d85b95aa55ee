// OpenCode plugin: records the id of each new session in $TEROK_SESSION_FILE, so the next
// headless run in this task can resume it.
import { writeFile } from "node:fs/promises";

export const TerokSession = async () => ({
  event: async ({ event }) => {
    const file = process.env.TEROK_SESSION_FILE;
    if (!file || event?.type !== "session.created") return;
    const id = event.properties?.info?.id ?? event.properties?.sessionID;
    if (id) await writeFile(file, `${id}\n`);
  },
});
