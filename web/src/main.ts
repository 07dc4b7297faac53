/**
 * The Pixel Info web page: Caption, Query and Info tabs over the HTTP API (docs/api.md). This entry point only
 * wires the modules together; esbuild bundles it with everything it imports into the page's one script, /app.js
 * (src/server/plugins/web.ts).
 */
import { createCaptionTab } from './caption-tab.js';
import { createLibraryView } from './library.js';
import { createModelCardView } from './model-card.js';
import { createTabs } from './tabs.js';
import { byId } from './dom.js';
import { bindKeyControls } from './auth.js';

bindKeyControls();
const library = createLibraryView();
const modelCard = createModelCardView();
const tabs = createTabs(byId('tabs'), {
  query: () => void library.search({ quiet: true }),
  info: () => void modelCard.load(),
});
createCaptionTab({ onPaste: () => tabs.select('caption') });
