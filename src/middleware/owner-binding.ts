import type { Request } from 'express';
import { keeperData, ownerOf } from '../passport/session.js';
import type { Profile } from '../provider/types.js';
import { appOwner, isAppOwner } from '../store/owner.js';
import type { KeeperParts } from './context.js';

/**
 * The owner a completed login's tokens are stored under, kept in the session (the owner
 * id only, never a token). When the app's `owner` option names a key, the session is
 * bound to it, and the token sets the session held under its own random owner move there
 * (where that owner has none of the provider yet).
 */
export async function loginOwner(parts: KeeperParts, req: Request, user: unknown, profile: Profile, provider: string): Promise<string> {
  const chosen = parts.owner ? await parts.owner(req, user, profile) : undefined;
  if (chosen === undefined) return ownerOf(req, true)!;
  const owner = appOwner(chosen, 'The key returned by the oauthKeeper owner option');
  const data = keeperData(req, 'The login');
  const previous = data.owner;
  data.owner = owner;
  if (previous !== undefined && previous !== owner && !isAppOwner(previous)) await adoptSessionTokens(parts, previous, owner, provider);
  return owner;
}

async function adoptSessionTokens(parts: KeeperParts, from: string, to: string, except: string): Promise<void> {
  const others = parts.providers.filter((name) => name !== except);
  for (const name of others) {
    const stored = await parts.store.get(from, name);
    // Expected generation 0: only where the owner has no set of this provider yet.
    if (stored) await parts.store.put(to, name, stored.tokenSet, 0, stored.connectedAt);
  }
  await parts.store.delete(from, parts.providers);
}
