// Loopback only, plus two routes for the tests: reset to a seed, and the whole state.
const cds = require('@sap/cds')
const express = require('express')

const SERVICES = ['AccountsHandling', 'CodeBHandling', 'SupplierHandling', 'PurchaseOrderHandling',
  'ManualSupplierInvoiceHandling', 'VoucherHandling']
const all = () => Object.assign({}, ...SERVICES.map(s => {
  const out = {}
  for (const [name, e] of Object.entries(cds.entities(`IfsApp.${s}`))) if (!name.includes('.')) out[`${s}.${name}`] = e
  return out
}))

cds.on('bootstrap', app => {
  const listen = app.listen.bind(app)
  app.listen = (port, ...rest) => listen(port, '127.0.0.1', ...rest)
  app.post('/_test/reset', express.json({ limit: '5mb' }), async (req, res) => {
    const entities = all()
    for (const e of Object.values(entities)) await cds.db.run(DELETE.from(e))
    for (const [name, rows] of Object.entries(req.body || {}))
      if (rows.length) await cds.db.run(INSERT.into(entities[name]).entries(rows))
    res.json({ ok: true })
  })
  app.get('/_test/state', async (_req, res) => {
    const out = {}
    for (const [name, e] of Object.entries(all())) out[name] = await cds.db.run(SELECT.from(e))
    res.json(out)
  })
})

module.exports = cds.server
