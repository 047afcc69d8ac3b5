// The IFS contract (shared/spec/ifs-contract.md §2) as plain CAP entities: same service paths,
// entity sets, keys, child collections, bound actions and ETags. Nothing here follows the
// connector's emulator; CAP answers as CAP does (paging, errors, $batch, If-Match).
namespace IfsApp;

aspect Etagged { Changed : Timestamp @odata.etag @cds.on.insert: $now @cds.on.update: $now; }

@path: '/int/ifsapplications/projection/v1/AccountsHandling.svc'
service AccountsHandling {
  entity AccountSet : Etagged { key Company : String(20); key Account : String(20);
    Description : String(100); ValidFrom : Date; ValidUntil : Date; }
}

@path: '/int/ifsapplications/projection/v1/CodeBHandling.svc'
service CodeBHandling {
  entity CodeBSet : Etagged { key Company : String(20); key CodeB : String(20);
    Description : String(100); ValidFrom : Date; ValidUntil : Date; }
}

@path: '/int/ifsapplications/projection/v1/SupplierHandling.svc'
@impl: 'srv/handlers.js'
service SupplierHandling {
  entity SupplierInfoGeneralSet : Etagged { key SupplierId : String(20);
    Name : String(100); Country : String(2); DefaultLanguage : String(5);
    AssociationNo : String(50); CreationDate : Date;
    SupplierInvoiceCompanies : Composition of many SupplierInvoiceCompany
      on SupplierInvoiceCompanies.SupplierId = SupplierId; }
  entity SupplierInvoiceCompany : Etagged { key SupplierId : String(20); key Company : String(20);
    PayTermId : String(10); Currency : String(3); }
}

@path: '/int/ifsapplications/projection/v1/PurchaseOrderHandling.svc'
service PurchaseOrderHandling {
  entity PurchaseOrderSet : Etagged { key OrderNo : String(20); Company : String(20);
    VendorNo : String(20); CurrencyCode : String(3); Objstate : String(20); }
}

@path: '/int/ifsapplications/projection/v1/ManualSupplierInvoiceHandling.svc'
@impl: 'srv/handlers.js'
service ManualSupplierInvoiceHandling {
  entity PostingProposalHeadSet : Etagged { key Company : String(20); key InvoiceId : Integer;
    Identity : String(20); InvoiceNo : String(50); InvoiceType : String(10);
    InvoiceDate : Date; DueDate : Date; Currency : String(3);
    NetCurrAmount : Decimal(18, 2); VatCurrAmount : Decimal(18, 2);
    GrossCurrAmount : Decimal(18, 2); PurchaseOrderRef : String(20);
    ExternalRef : String(200); Objstate : String(20) default 'Preliminary';
    Lines : Composition of many PostingProposalLine
      on Lines.Company = Company and Lines.InvoiceId = InvoiceId; }
    actions { action PostingProposalHead_Post() returns PostingProposalHeadSet; }
  entity PostingProposalLine { key Company : String(20); key InvoiceId : Integer;
    key RowNo : Integer; Account : String(20); CodeB : String(20); CurrAmount : Decimal(18, 2);
    TaxCode : String(20); TaxCurrAmount : Decimal(18, 2); Text : String(200); }
}

@path: '/int/ifsapplications/projection/v1/VoucherHandling.svc'
@impl: 'srv/handlers.js'
service VoucherHandling {
  entity VoucherSet : Etagged { key Company : String(20); key AccountingYear : Integer;
    key VoucherType : String(10); key VoucherNo : Integer; VoucherDate : Date;
    Currency : String(3); Text : String(200); ExternalRef : String(200);
    Objstate : String(20) default 'Waiting';
    Rows : Composition of many VoucherRow on Rows.Company = Company
      and Rows.AccountingYear = AccountingYear and Rows.VoucherType = VoucherType
      and Rows.VoucherNo = VoucherNo; }
    actions { action Voucher_Approve() returns VoucherSet; }
  entity VoucherRow { key Company : String(20); key AccountingYear : Integer;
    key VoucherType : String(10); key VoucherNo : Integer; key RowNo : Integer;
    Account : String(20); CodeB : String(20); CurrencyDebitAmount : Decimal(18, 2);
    CurrencyCreditAmount : Decimal(18, 2); Text : String(200); }
}

// VoucherHandling declares (OData Capabilities vocabulary) that If-Match `$n` references are
// not supported; ManualSupplierInvoiceHandling says nothing and refuses them with a 412.
annotate VoucherHandling with @Capabilities.BatchSupport: {
  Supported: true, EtagReferencesSupported: false };
