-- What happens in the shop between two runs: updates, new rows, a deleted country.
UPDATE customers SET vip = true, updated_at = now() - interval '1 minute' WHERE id % 100 = 0;
UPDATE orders SET status = 'shipped', updated_at = now() - interval '1 minute' WHERE status = 'paid' AND id % 10 = 0;
INSERT INTO customers (name, email, country, created_at, updated_at)
  SELECT 'New customer ' || i, 'new' || i || '@example.com', 'FR', now() - interval '1 minute', now() - interval '1 minute'
  FROM generate_series(1, 50) i;
INSERT INTO orders (customer_id, total, items, updated_at)
  SELECT 2000 + i, 9.99, '[{"sku": "NEW", "qty": 1}]', now() - interval '1 minute' FROM generate_series(1, 50) i;
INSERT INTO events (kind, payload) SELECT 'signup', jsonb_build_object('customer', 2000 + i) FROM generate_series(1, 50) i;
UPDATE countries SET vat_rate = 21 WHERE code = 'FR';
DELETE FROM countries WHERE code = 'BR';
