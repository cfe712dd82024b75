/** The sandbox's patent and trademark records, and the expression search over them. */
import { reply, type SandboxReply } from '../server.js';

/** The `errorCode` of a successful API answer; any other code is a business error. */
export const OK = '000000';

interface PatentRecord {
  pid: string;
  title: string;
  appNumber: string;
  appDate: string;
  pubNumber: string;
  pubDate: string;
  applicant: string;
  inventor: string;
  ipc: string;
  abstract: string;
}

export const CN_PATENTS: readonly PatentRecord[] = [
  {
    pid: 'PIDCNA0SANDBOX0001',
    title: '一种基于导频的信道估计方法及装置',
    appNumber: 'CN202010000101.3',
    appDate: '2020-01-03',
    pubNumber: 'CN111130012A',
    pubDate: '2020-05-08',
    applicant: '华为技术有限公司',
    inventor: '张伟;李娜',
    ipc: 'H04L25/02',
    abstract: '本申请提供一种信道估计方法（沙盒数据）。',
  },
  {
    pid: 'PIDCNA0SANDBOX0002',
    title: '数据包传输方法、通信装置及系统',
    appNumber: 'CN202110000202.7',
    appDate: '2021-02-11',
    pubNumber: 'CN114900021A',
    pubDate: '2022-08-12',
    applicant: '华为技术有限公司',
    inventor: '王强',
    ipc: 'H04L47/10',
    abstract: '一种数据包传输方法（沙盒数据）。',
  },
  {
    pid: 'PIDCNA0SANDBOX0003',
    title: '一种小区切换方法及基站',
    appNumber: 'CN201910000303.1',
    appDate: '2019-03-20',
    pubNumber: 'CN109905003A',
    pubDate: '2019-06-18',
    applicant: '中兴通讯股份有限公司',
    inventor: '陈刚',
    ipc: 'H04W36/00',
    abstract: '一种小区切换方法（沙盒数据）。',
  },
  {
    pid: 'PIDCNA0SANDBOX0004',
    title: '基于注意力机制的文本分类模型训练方法',
    appNumber: 'CN202210000404.9',
    appDate: '2022-04-01',
    pubNumber: 'CN114600004A',
    pubDate: '2022-06-10',
    applicant: '清华大学',
    inventor: '刘洋;赵敏',
    ipc: 'G06N3/08',
    abstract: '一种文本分类模型训练方法（沙盒数据）。',
  },
  {
    pid: 'PIDCNA0SANDBOX0005',
    title: '电池包及电动汽车',
    appNumber: 'CN202020000505.X',
    appDate: '2020-05-15',
    pubNumber: 'CN212000005U',
    pubDate: '2020-11-24',
    applicant: '比亚迪股份有限公司',
    inventor: '孙磊',
    ipc: 'H01M50/20',
    abstract: '一种电池包（沙盒数据）。',
  },
];

export const EP_PATENTS: readonly PatentRecord[] = [
  {
    pid: 'PIDEPA0SANDBOX0001',
    title: 'Channel estimation method and apparatus',
    appNumber: 'EP20900001.5',
    appDate: '2020-12-01',
    pubNumber: 'EP4000001A1',
    pubDate: '2022-05-18',
    applicant: 'HUAWEI TECHNOLOGIES CO., LTD.',
    inventor: 'ZHANG, Wei',
    ipc: 'H04L25/02',
    abstract: 'A channel estimation method (sandbox data).',
  },
  {
    pid: 'PIDEPA0SANDBOX0002',
    title: 'Battery pack and electric vehicle',
    appNumber: 'EP21900002.3',
    appDate: '2021-06-07',
    pubNumber: 'EP4100002A1',
    pubDate: '2022-12-14',
    applicant: 'BYD COMPANY LIMITED',
    inventor: 'SUN, Lei',
    ipc: 'H01M50/20',
    abstract: 'A battery pack (sandbox data).',
  },
];

interface TrademarkRecord {
  id: string;
  name: string;
  regNumber: string;
  intCls: string;
  applicant: string;
  appDate: string;
  status: string;
}

export const TRADEMARKS: readonly TrademarkRecord[] = [
  { id: 'TMCN0SANDBOX0001', name: '华为', regNumber: '1000001', intCls: '9', applicant: '华为技术有限公司', appDate: '2003-03-10', status: '注册' },
  { id: 'TMCN0SANDBOX0002', name: 'HUAWEI', regNumber: '1000002', intCls: '38', applicant: '华为技术有限公司', appDate: '2004-07-22', status: '注册' },
  { id: 'TMCN0SANDBOX0003', name: '比亚迪', regNumber: '1000003', intCls: '12', applicant: '比亚迪股份有限公司', appDate: '2005-01-18', status: '注册' },
];

/** The terms of a search expression: every `(...)` group, or the whole text when there is none. */
function expressionTerms(express: string): string[] {
  const groups = [...express.matchAll(/\(([^()]*)\)/g)].map((m) => (m[1] ?? '').trim()).filter((t) => t.length > 0);
  return groups.length > 0 ? groups : [express.trim()];
}

function matchesAll(item: object, terms: string[]): boolean {
  const text = Object.values(item).join('\u0001').toLowerCase();
  return terms.every((term) => text.includes(term.toLowerCase()));
}

export const businessError = (errorCode: string, message: string): SandboxReply => reply.json(200, { errorCode, message });

/** Reads `page` (from 1) and `page_row` (10, 50 or 100); a business error when invalid. */
function paging(p: Record<string, string>): { page: number; rows: number } | SandboxReply {
  const page = p['page'] === undefined ? 1 : Number(p['page']);
  const rows = p['page_row'] === undefined ? 10 : Number(p['page_row']);
  if (!Number.isInteger(page) || page < 1) return businessError('100002', 'page 参数错误: must be an integer from 1');
  if (![10, 50, 100].includes(rows)) return businessError('100002', 'page_row 参数错误: must be 10, 50 or 100');
  return { page, rows };
}

export function searchReply<T extends object>(records: readonly T[], p: Record<string, string>): SandboxReply {
  const express = p['express'];
  if (express === undefined || express.trim().length === 0) return businessError('100001', '检索表达式 express 不能为空 (express is required)');
  const paged = paging(p);
  if ('status' in paged) return paged;
  const matched = records.filter((r) => matchesAll(r, expressionTerms(express)));
  const start = (paged.page - 1) * paged.rows;
  return reply.json(200, {
    errorCode: OK,
    total: matched.length,
    page: paged.page,
    page_row: paged.rows,
    context: { records: matched.slice(start, start + paged.rows) },
  });
}
