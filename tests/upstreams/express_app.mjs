// A real Express application with the routes of the path-confusion corpus, at Express's
// defaults (case-insensitive, non-strict routing). It answers which route served each
// request, with the path Express matched and the request target as it arrived, and prints its
// port on the first line of stdout.
import express from 'express';

const app = express();
const seen = [];
app.get('/__seen', (req, res) => res.json(seen));
app.use((req, res, next) => {
  seen.push(req.originalUrl);
  next();
});
const answer = (served) => (req, res) =>
  res.status(served === 'none' ? 404 : 200).json({ served, path: req.path, raw: req.originalUrl });
app.use('/admin', answer('admin'));
app.use('/public', answer('public'));
app.use(answer('none'));
app.use((err, req, res, next) => res.status(400).json({ served: 'error', raw: req.originalUrl }));

const server = app.listen(0, '127.0.0.1', () => console.log(server.address().port));
