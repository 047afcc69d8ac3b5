// IFS business rules the connector relies on, as CAP handlers (ifs-contract.md §4). Errors use
// CAP's own error shape: {"error": {"code": "...", "message": "..."}}.
const cds = require('@sap/cds')

const sum = (rows, field) => rows.reduce((acc, r) => acc + Math.round(Number(r[field] || 0) * 100), 0)
const max = async (entity, column, where) =>
  ((await SELECT.one.from(entity).columns(`max(${column}) as n`).where(where)) || {}).n || 0
// Row numbers of children created concurrently (CAP runs a changeset's operations in
// parallel): the synchronous part after the read makes each number unique, like a sequence.
const issued = new Map()
const nextRow = async (entity, where) => {
  const key = JSON.stringify(where), top = await max(entity, 'RowNo', where)
  const n = Math.max(top, issued.get(key) || 0) + 1
  issued.set(key, n)
  return n
}

module.exports = function () {
  const { PostingProposalHeadSet, PostingProposalLine, VoucherSet, VoucherRow,
    SupplierInfoGeneralSet, SupplierInvoiceCompany } = this.entities

  if (SupplierInfoGeneralSet) {
    this.before('CREATE', SupplierInfoGeneralSet, req => {
      req.data.CreationDate ??= new Date().toISOString().slice(0, 10)
    })
    this.before('CREATE', SupplierInvoiceCompany, async req => {
      const { SupplierId, Company } = req.data
      if (await SELECT.one.from(SupplierInvoiceCompany).where({ SupplierId, Company }))
        req.reject(400, 'FND_RECORD_EXIST', [`Supplier ${SupplierId} is already connected to company ${Company}`])
    })
  }

  if (PostingProposalHeadSet) {
    this.before('CREATE', PostingProposalHeadSet, async req => {
      const d = req.data
      if (await SELECT.one.from(PostingProposalHeadSet)
        .where({ Company: d.Company, Identity: d.Identity, InvoiceNo: d.InvoiceNo }))
        return req.reject(400, `FND_RECORD_EXIST`)
      const links = cds.entities('IfsApp.SupplierHandling').SupplierInvoiceCompany
      if (!await SELECT.one.from(links).where({ SupplierId: d.Identity, Company: d.Company }))
        return req.reject(400, 'SUPPLIER_NOT_CONNECTED')
      d.InvoiceId = Math.max(1000, await max(PostingProposalHeadSet, 'InvoiceId', { Company: d.Company })) + 1
      d.Objstate = 'Preliminary'
      ;(d.Lines || []).forEach((line, n) => { line.RowNo ??= n + 1 })
    })
    this.before('CREATE', PostingProposalLine, async req => {
      const d = req.data
      if (d.RowNo == null)
        d.RowNo = await nextRow(PostingProposalLine, { Company: d.Company, InvoiceId: d.InvoiceId })
    })
    this.on('PostingProposalHead_Post', PostingProposalHeadSet, async req => {
      const head = await SELECT.one.from(req.subject)
      if (!head) return req.reject(404)
      const lines = await SELECT.from(PostingProposalLine).where({ Company: head.Company, InvoiceId: head.InvoiceId })
      if (!lines.length) return req.reject(400, 'NO_LINES')
      if (sum(lines, 'CurrAmount') !== sum([head], 'NetCurrAmount') ||
          sum(lines, 'TaxCurrAmount') !== sum([head], 'VatCurrAmount'))
        return req.reject(400, 'NOT_BALANCED')
      if (head.Objstate !== 'Preliminary') return req.reject(400, 'FND_STATE_NOT_ALLOWED')
      await UPDATE(req.subject).with({ Objstate: 'Posted' })
      return SELECT.one.from(req.subject)
    })
  }

  if (VoucherSet) {
    this.before('CREATE', VoucherSet, async req => {
      const d = req.data
      d.AccountingYear = Number(String(d.VoucherDate).slice(0, 4))
      const where = { Company: d.Company, AccountingYear: d.AccountingYear, VoucherType: d.VoucherType }
      d.VoucherNo = Math.max(d.AccountingYear * 10000, await max(VoucherSet, 'VoucherNo', where)) + 1
      d.Objstate = 'Waiting'
      ;(d.Rows || []).forEach((row, n) => { row.RowNo ??= n + 1 })
    })
    this.before('CREATE', VoucherRow, async req => {
      const d = req.data
      if (d.RowNo == null) d.RowNo = await nextRow(VoucherRow, {
        Company: d.Company, AccountingYear: d.AccountingYear, VoucherType: d.VoucherType, VoucherNo: d.VoucherNo })
    })
    this.on('Voucher_Approve', VoucherSet, async req => {
      const v = await SELECT.one.from(req.subject)
      if (!v) return req.reject(404)
      const rows = await SELECT.from(VoucherRow).where({
        Company: v.Company, AccountingYear: v.AccountingYear, VoucherType: v.VoucherType, VoucherNo: v.VoucherNo })
      if (rows.length < 2) return req.reject(400, 'TOO_FEW_ROWS')
      if (sum(rows, 'CurrencyDebitAmount') !== sum(rows, 'CurrencyCreditAmount')) return req.reject(400, 'NOT_BALANCED')
      if (v.Objstate !== 'Waiting') return req.reject(400, 'FND_STATE_NOT_ALLOWED')
      await UPDATE(req.subject).with({ Objstate: 'Approved' })
      return SELECT.one.from(req.subject)
    })
  }
}
